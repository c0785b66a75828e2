"""sys.exit and os._exit end the cell, not the session, which keeps its state from before."""

from .sandbox_helpers import assert_contained


def test_sys_exit(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("kept = 1")
    r = s.run("import sys\nkept = 2\nsys.exit(3)")
    assert r.error.name == "SystemExit" and r.error.value == "3"
    assert s.run("kept").result == "1"
    assert_contained(fresh_sandbox)


def test_os_exit(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("kept = 1")
    r = s.run("import os\nkept = 2\nos._exit(0)")
    assert r.error.name == "SandboxCrash" and "exited with status 0" in r.error.value
    assert s.run("kept").result == "1"
    assert_contained(fresh_sandbox)


def test_exit_builtin_and_keyboard_interrupt(fresh_sandbox):
    s = fresh_sandbox.session()
    assert s.run("exit()").error.name in ("SystemExit", "NameError")
    assert s.run("raise KeyboardInterrupt").error.name == "KeyboardInterrupt"
    assert s.run("1").result == "1"
