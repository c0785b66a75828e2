"""An infinite loop is stopped at the time limit; the session answers at once afterwards."""

import time

from .sandbox_helpers import assert_contained


def test_infinite_loop(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("n = 1")
    r = s.run("while True:\n    n += 1", timeout=1)
    assert r.timed_out and r.error.name == "TimeoutError"
    t0 = time.perf_counter()
    assert s.run("n").result == "1"
    assert time.perf_counter() - t0 < 0.5
    assert_contained(fresh_sandbox)


def test_loop_in_c_code(fresh_sandbox):
    r = fresh_sandbox.session().run("import re\nre.match('(a+)+$', 'a' * 40 + 'b')", timeout=1)
    assert r.timed_out
    assert_contained(fresh_sandbox)


def test_cpu_limit(backend):
    from agentrl.sandbox import open_sandbox

    with open_sandbox(backend, cpu_s=1, timeout=10) as sb:
        s = sb.session()
        s.run("n = 1")
        r = s.run("while True:\n    n += 1")
        assert r.error.name == "CPUTimeExceeded" and not r.timed_out
        assert s.run("n").result == "1"
        assert_contained(sb)
