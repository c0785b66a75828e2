"""os.system and subprocess run inside the same walls: unprivileged, no host view, no escape."""

import os
import shlex

import pytest

from .sandbox_helpers import assert_contained


def test_shell_is_unprivileged_and_blind(fresh_sandbox):
    project = os.path.dirname(os.path.abspath("pyproject.toml"))  # the checkout, as in test_security_host_secrets
    assert os.path.exists(os.path.join(project, "pyproject.toml"))  # so a listing that worked would show it
    cmd = f"id -u; ls {shlex.quote(project)}; cat /etc/shadow; ps ax | wc -l"
    r = fresh_sandbox.session().run(
        f"import subprocess\nprint(subprocess.run({cmd!r}, shell=True, capture_output=True, text=True))"
    )
    assert r.ok, r
    assert "returncode" in r.stdout
    assert "pyproject" not in r.stdout
    assert "'1000\\n" in r.stdout
    assert_contained(fresh_sandbox)


def test_no_privilege_escalation(fresh_sandbox):
    s = fresh_sandbox.session()
    for code in ("import os\nos.setuid(0)", "import os\nos.chroot('/tmp')"):
        r = s.run(code)
        assert r.error.name == "PermissionError", code
    r = s.run("import ctypes\nctypes.CDLL(None, use_errno=True).unshare(0x10000000), ctypes.get_errno()")
    assert r.result == "(-1, 1)"  # seccomp: EPERM for new namespaces
    r = s.run("import ctypes\nctypes.CDLL(None, use_errno=True).ptrace(16, 1, 0, 0), ctypes.get_errno()")
    assert r.result == "(-1, 1)"
    assert_contained(fresh_sandbox)


LISTING = """
import os
def cmdlines():
    out = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:  # a process may exit between listdir and open
            out.append(open(f'/proc/{pid}/cmdline').read())
        except OSError:
            pass
    return out
cmdlines()
"""
SLEEPER = "import subprocess, os, time\np = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"


@pytest.mark.parametrize(
    ("ending", "error"),
    [("", None), ("os._exit(3)", "SandboxCrash"), ("time.sleep(30)", "TimeoutError")],
    ids=["ends", "crashes", "times-out"],
)
def test_processes_started_by_a_cell_do_not_outlive_it(fresh_sandbox, ending, error):
    """However the cell ends, its setsid'd child goes with it: a crashed cell's orphans would otherwise go to init."""
    s = fresh_sandbox.session()
    r = s.run(SLEEPER + ending, timeout=1.5)
    assert (r.error.name if r.error else None) == error, r.output()
    r = s.run(LISTING)
    assert r.error is None and r.result is not None, r.output()
    assert "sleep" not in r.result
