"""1,000 sessions opened and closed leave no stray processes and no growth in host fds or memory."""

import os
import time

from agentrl.sandbox import open_sandbox

from .sandbox_helpers import host_pids_in_pid_namespace, wait_until


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_thousand_sessions_leak_nothing():
    with open_sandbox() as sb:
        for _ in range(50):  # warm up allocator and caches
            sb.session().close()
        baseline_pids = len(host_pids_in_pid_namespace(sb.pid_namespace))
        fds, rss = _open_fds(), _rss_kb()
        t0 = time.perf_counter()
        for i in range(1000):
            s = sb.session()
            if i % 10 == 0:
                s.run("x = 1")
                s.fork().close()
            s.close()
        elapsed = time.perf_counter() - t0
        assert wait_until(lambda: len(host_pids_in_pid_namespace(sb.pid_namespace)) <= baseline_pids)
        assert _open_fds() <= fds
        assert _rss_kb() - rss < 10_000, "host RSS grew by more than 10 MB"
        assert elapsed < 30
    assert wait_until(lambda: host_pids_in_pid_namespace(sb.pid_namespace) == [])
