"""A segfault kills only the cell's process; the state from before is kept."""

from .sandbox_helpers import assert_contained


def test_ctypes_segfault(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("kept = [1, 2]")
    r = s.run("import ctypes\nctypes.string_at(0)")
    assert r.error.name == "SandboxCrash" and "SIGSEGV" in r.error.value
    assert s.run("kept").result == "[1, 2]"
    assert_contained(fresh_sandbox)


def test_abort(fresh_sandbox):
    s = fresh_sandbox.session()
    r = s.run("import os\nos.abort()")
    assert r.error.name == "SandboxCrash" and "SIGABRT" in r.error.value
    assert_contained(fresh_sandbox)
