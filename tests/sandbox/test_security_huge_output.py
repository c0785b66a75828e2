"""Huge output is bounded by max_output_bytes and flagged truncated."""

from agentrl.sandbox import open_sandbox

from .sandbox_helpers import assert_contained


def test_huge_output_is_truncated(backend):
    with open_sandbox(backend, max_output_bytes=10_000) as sb:
        r = sb.session().run("import sys\nprint('x' * 10**8)\nsys.stderr.write('e' * 10**7)\n1")
        assert r.truncated
        assert len(r.stdout) + len(r.stderr) <= 10_000
        assert r.result == "1"
        assert_contained(sb)


def test_endless_output_is_bounded(fresh_sandbox):
    r = fresh_sandbox.session().run("while True:\n    print('y' * 1000)", timeout=1)
    assert r.timed_out and r.truncated
    assert len(r.stdout) <= fresh_sandbox.limits.max_output_bytes
    assert_contained(fresh_sandbox)


def test_huge_result_repr_is_clipped(fresh_sandbox):
    r = fresh_sandbox.session().run("'z' * 10**7")
    assert len(r.result) < 2 * fresh_sandbox.limits.max_output_bytes
