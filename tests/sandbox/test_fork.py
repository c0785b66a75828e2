"""fork() is an independent copy of a session's state (variables and files) at that moment."""

import time

from .sandbox_helpers import wait_until


def test_fork_copies_state_and_is_independent(sandbox):
    s = sandbox.session()
    s.run("items = [1]")
    f = s.fork()
    f.run("items.append(2)")
    s.run("items.append(3)")
    assert s.run("items").result == "[1, 3]"
    assert f.run("items").result == "[1, 2]"


def test_fork_copies_the_working_directory(sandbox):
    s = sandbox.session()
    s.run("open('data.txt', 'w').write('v1')")
    f = s.fork()
    f.run("open('data.txt', 'w').write('v2')")
    assert s.run("open('data.txt').read()").result == "'v1'"
    assert f.run("open('data.txt').read()").result == "'v2'"


def test_fork_of_a_fork_and_closing_the_parent(sandbox):
    s = sandbox.session()
    s.run("n = 0")
    f1 = s.fork()
    f1.run("n += 1")
    f2 = f1.fork()
    s.close()
    f1.close()
    assert f2.run("n + 1").result == "2"


def test_fork_is_fast(sandbox):
    s = sandbox.session()
    s.run("x = 1")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        s.fork().close()
        times.append(time.perf_counter() - t0)
    assert sorted(times)[2] < 0.1


def test_out_of_processes_is_a_clear_error_not_a_dead_session():
    import pytest

    from agentrl.errors import AgentRLError
    from agentrl.sandbox import open_sandbox

    with open_sandbox(max_procs=3) as sb:
        s = sb.session()
        s.run("x = 1")
        forks = []
        with pytest.raises(AgentRLError, match="max_procs"):
            for _ in range(5):
                forks.append(s.fork())
        r = s.run("x")
        assert r.result == "1" or "max_procs" in r.error.value
        for f in forks:
            f.close()
        assert wait_until(lambda: s.run("x").result == "1")  # the forks' processes exit soon after
