#!/usr/bin/env bash
# Installs the Debian packages agentrl needs when they are missing: bubblewrap (the local sandbox) and
# chromium (the browser tool, driven by Playwright; never `playwright install`).
# Says what to do instead when it cannot (not root, no apt-get).
set -u
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "agentrl: missing system packages: ${missing[*]}." >&2
  echo "  Install them as root (Debian/Ubuntu: sudo apt-get install -y ${missing[*]}), then re-run." >&2
  echo "  Without bubblewrap the local sandbox refuses to run model-written code ('agentrl sandbox check');" >&2
  echo "  without chromium the browser tool (web-qa, shop-policy) cannot start." >&2
  exit 0
fi
echo "agentrl: installing ${missing[*]} with apt-get" >&2
apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
  || echo "agentrl: apt-get install ${missing[*]} failed; install it by hand" >&2
