"""`agentrl sandbox ...`: check that the local sandbox works on this machine, run a file in it.

Thin: the checks live in `run_checks()` (tests call it directly); this module only prints them.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agentrl.errors import AgentRLError

app = typer.Typer(help="Check and use the code sandbox.", no_args_is_help=True, add_completion=False)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _userns_state() -> tuple[bool, str]:
    facts, ok = [], True
    for path, bad in (
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    ):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        facts.append(f"{Path(path).name}={value}")
        if value == bad and not (path.endswith("_userns_clone") and os.geteuid() == 0):
            ok = False
    return ok, ", ".join(facts) or "no sysctl knobs found (allowed by default)"


def run_checks() -> list[Check]:
    """Whether the local sandbox works here, and why not: one Check per promise."""
    checks: list[Check] = []
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        checks.append(Check("bubblewrap installed", False, "not found: apt-get install bubblewrap"))
        return checks
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
    checks.append(Check("bubblewrap installed", True, f"{bwrap} ({version})"))
    ok, facts = _userns_state()
    checks.append(Check("user namespaces allowed", ok, facts))

    from agentrl.sandbox import open_sandbox
    from agentrl.sandbox._seccomp import program

    t0 = time.perf_counter()
    try:
        sb = open_sandbox(timeout=5, memory_mb=512, max_procs=16, file_size_mb=1)
    except AgentRLError as e:
        checks.append(Check("sandbox starts", False, str(e)))
        return checks
    with sb:
        checks.append(Check("sandbox starts", True, f"{(time.perf_counter() - t0) * 1000:.0f} ms"))
        s = sb.session()
        r = s.run("x = 41\nx + 1")
        checks.append(Check("a cell runs", r.result == "42", f"result {r.result}, {r.duration_s * 1000:.1f} ms"))

        r = s.run("import os\nos.getuid(), open('/proc/self/status').read().split('Seccomp:')[1].split()[0]")
        uid, mode = ast.literal_eval(r.result) if r.ok else (None, None)  # never eval sandbox output
        uid_ok = uid not in (None, 0)
        checks.append(Check("unprivileged kernel uid", uid_ok, f"uid {uid} in the sandbox"))
        seccomp_expected = program() is not None
        checks.append(
            Check(
                "seccomp filter active",
                mode == "2" or not seccomp_expected,
                f"mode {mode}" if seccomp_expected else "no filter for this architecture",
            )
        )
        r = s.run("import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=1)")
        checks.append(Check("no network", r.error is not None, r.error.summary() if r.error else "connected!"))
        here = str(Path("pyproject.toml").resolve()) if Path("pyproject.toml").exists() else __file__
        r = s.run(f"open({here!r}).read()")
        checks.append(Check("host files hidden", r.error is not None, r.error.name if r.error else f"read {here}"))
        r = s.run("'AGENTRL_CHECK' in __import__('os').environ")
        checks.append(Check("host environment hidden", r.result == "False", "clean environment"))

        r = s.run("x = 0\nwhile True:\n    x += 1", timeout=0.5)
        after = s.run("x")
        checks.append(
            Check(
                "timeout kills, state kept",
                r.timed_out and after.result == "41",
                f"timed out after {r.duration_s:.2f} s; x is {after.result}",
            )
        )
        r = s.run("bytearray(2 * 1024**3)")
        checks.append(Check("memory limit", r.error is not None and r.error.name == "MemoryError", "512 MiB"))
        r = s.run("open('big', 'wb').write(b'x' * 2 * 1024**2)")
        checks.append(Check("file size limit", r.error is not None, r.error.summary() if r.error else "wrote 2 MiB"))
        r = s.run("import resource\nresource.getrlimit(resource.RLIMIT_NPROC)[0]")
        checks.append(Check("process limit", r.result == "16", f"RLIMIT_NPROC {r.result}"))
        s.close()
    return checks


@app.command()
def check() -> None:
    """Tell whether the local sandbox works on this machine, and why not."""
    os.environ.setdefault("AGENTRL_CHECK", "secret")
    checks = run_checks()
    table = Table(title="agentrl local sandbox")
    table.add_column("check")
    table.add_column("")
    table.add_column("detail", overflow="fold")
    for c in checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", c.detail)
    Console().print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Python file to run.", exists=True, dir_okay=False)],
    timeout: Annotated[float, typer.Option(help="Wall-clock limit in seconds.")] = 30.0,
    memory_mb: Annotated[int, typer.Option(help="Address-space limit in MiB.")] = 2048,
    preload: Annotated[list[str] | None, typer.Option(help="Module to import before the file.")] = None,
) -> None:
    """Run a Python file in a fresh local sandbox session; print its output; exit 1 on error."""
    from agentrl.sandbox import open_sandbox

    code = file.read_text()
    with open_sandbox(timeout=timeout, memory_mb=memory_mb, preload=preload or []) as sb:
        r = sb.session().run(code)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.result is not None:
        print(r.result)
    if r.error is not None:
        sys.stderr.write(r.error.traceback or r.error.summary() + "\n")
    if r.truncated:
        sys.stderr.write("[output truncated]\n")
    if not r.ok:
        raise typer.Exit(1)


@app.command()
def gc() -> None:
    """Remove the docker backend's containers whose owner process is gone (after a crash or a SIGKILL)."""
    from agentrl.sandbox.docker import engine, remove_orphans

    removed = remove_orphans(engine())
    print(f"removed {len(removed)} orphaned sandbox container(s)" + (f": {', '.join(removed)}" if removed else ""))
