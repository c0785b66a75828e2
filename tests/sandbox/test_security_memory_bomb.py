"""Exhausting memory fails inside the cell (MemoryError), and the state from before is kept."""

from .sandbox_helpers import assert_contained


def test_one_huge_allocation(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("kept = 'yes'")
    r = s.run("blob = bytearray(10**11)")
    assert r.error.name == "MemoryError"
    assert s.run("kept").result == "'yes'"
    assert_contained(fresh_sandbox)


def test_growing_until_exhausted(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("kept = 'yes'")
    r = s.run("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", timeout=10)
    assert r.error is not None and r.error.name in ("MemoryError", "SandboxCrash")
    assert s.run("kept").result == "'yes'"
    assert s.run("'chunks' in globals()").result == "False"  # rolled back
    assert_contained(fresh_sandbox)
