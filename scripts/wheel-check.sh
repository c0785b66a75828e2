#!/usr/bin/env bash
# Builds the wheel, installs it (not editable) in a fresh venv and runs the bundled task from an empty folder:
# what `pip install agentrl` (or a Ray worker image) gets must find its tasks, and a dry run must write nothing.
# Usage: scripts/wheel-check.sh (or `make wheel-check`); PYTHON makes the venv, PIP builds the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PIP=${PIP:-.venv/bin/pip}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "wheel-check FAILED: $*" >&2
  exit 1
}
step() { echo "wheel-check: $*" >&2; }

step "building the wheel"
# setuptools' build folders go to $work, not into the working tree (where stale files would end up in the wheel).
printf '[build]\nbuild_base = %s/build\n[egg_info]\negg_base = %s\n' "$work" "$work" >"$work/setup.cfg"
DIST_EXTRA_CONFIG="$work/setup.cfg" "$PIP" wheel -q --disable-pip-version-check --no-deps -w "$work/dist" . \
  || fail "$PIP wheel could not build the wheel"
wheel=$(echo "$work"/dist/agentrl-*.whl)
[ -f "$wheel" ] || fail "no agentrl wheel in $work/dist"

step "installing $(basename "$wheel") in a fresh venv"
"$PYTHON" -m venv "$work/venv" || fail "$PYTHON -m venv failed"
"$work/venv/bin/pip" install -q --disable-pip-version-check torch==2.13.0 "$wheel" \
  || fail "pip install of the wheel into a fresh venv failed"

mkdir "$work/cwd"
cd "$work/cwd"
for command in "tasks list" "tasks validate arith-python" "train arith-python --dry-run"; do
  step "agentrl $command (in an empty folder)"
  # shellcheck disable=SC2086  # the command's words are meant to split
  "$work/venv/bin/agentrl" $command >"$work/out.txt" 2>&1 || {
    cat "$work/out.txt" >&2
    fail "\`agentrl $command\` exited non-zero from the installed wheel (its output is above)"
  }
done
leftover=$(ls -A)
[ -z "$leftover" ] || fail "the commands wrote to the working folder: $leftover"
step "ok: the installed wheel lists, validates and dry-runs its bundled tasks, and writes nothing to the cwd"
