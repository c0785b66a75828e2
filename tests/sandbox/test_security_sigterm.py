"""A cell that ignores SIGTERM (and SIGINT) is still stopped at its time limit."""

from .sandbox_helpers import assert_contained


def test_ignoring_sigterm(fresh_sandbox):
    s = fresh_sandbox.session()
    r = s.run(
        "import signal, time\nfor sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
        "    signal.signal(sig, signal.SIG_IGN)\ntime.sleep(60)",
        timeout=1,
    )
    assert r.timed_out
    assert s.run("3").result == "3"
    assert_contained(fresh_sandbox)
