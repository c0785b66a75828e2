"""A cell that times out is killed; the session keeps the state from before it and answers at once."""

import time


def test_timeout_rolls_back_and_answers_at_once(sandbox):
    s = sandbox.session()
    s.run("x = 1")
    r = s.run("x = 2\nwhile True:\n    pass", timeout=0.5)
    assert r.timed_out and not r.ok
    assert 0.5 <= r.duration_s < 2.0
    t0 = time.perf_counter()
    after = s.run("x")
    assert after.result == "1"
    assert time.perf_counter() - t0 < 0.5


def test_output_before_the_timeout_is_kept(sandbox):
    r = sandbox.session().run("import time\nprint('started', flush=True)\ntime.sleep(10)", timeout=0.5)
    assert r.timed_out
    assert r.stdout == "started\n"


def test_default_timeout_comes_from_the_sandbox(sandbox):
    assert sandbox.limits.timeout == 5
