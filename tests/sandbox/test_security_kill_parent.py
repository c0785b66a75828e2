"""Killing the kernel or everything in reach hurts only the cell's own session."""

import pytest

from .sandbox_helpers import assert_contained


def test_kill_own_kernel(fresh_sandbox):
    neighbour = fresh_sandbox.session()
    neighbour.run("mine = 7")
    s = fresh_sandbox.session()
    r = s.run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    assert r.error.name == "SandboxCrash"
    assert s.run("1 + 1").result == "2"  # restarted fresh
    assert neighbour.run("mine").result == "7"
    assert_contained(fresh_sandbox)


def test_kill_minus_one(fresh_sandbox):
    neighbour = fresh_sandbox.session()
    neighbour.run("mine = 7")
    s = fresh_sandbox.session()
    s.run("kept = 1")
    r = s.run("import os\nos.kill(-1, 9)")
    assert r.error.name == "PermissionError"  # seccomp refuses kill(-1)
    r = s.run("import os\nos.system('kill -9 -1')")
    assert s.run("kept").result == "1"
    assert neighbour.run("mine").result == "7"
    assert_contained(fresh_sandbox)


@pytest.mark.local_only("a docker sandbox's sessions share one uid, so the container, not the session, is the boundary")
def test_kill_every_visible_process(fresh_sandbox):
    neighbour = fresh_sandbox.session()
    neighbour.run("mine = 7")
    s = fresh_sandbox.session()
    r = s.run(
        "import os\nfor p in os.listdir('/proc'):\n    if p.isdigit() and int(p) != os.getpid():\n"
        "        try:\n            os.kill(int(p), 9)\n        except OSError:\n            pass"
    )
    assert r.error is not None  # it killed its own kernel
    assert neighbour.run("mine").result == "7"  # other uids: out of reach
    assert_contained(fresh_sandbox)


def test_stop_own_kernel(fresh_sandbox):
    s = fresh_sandbox.session()
    r = s.run("import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(30)", timeout=0.5)
    assert r.timed_out and r.error.name == "SandboxCrash"
    assert s.run("2 + 2").result == "4"
    assert_contained(fresh_sandbox)
