"""Many sessions run at once from a thread pool; run() releases the GIL while it waits."""

import time
from concurrent.futures import ThreadPoolExecutor


def test_many_sessions_from_threads(sandbox):
    sessions = [sandbox.session() for _ in range(16)]

    def work(i):
        s = sessions[i]
        s.run(f"acc = {i}")
        for _ in range(10):
            s.run("acc += 1")
        return s.run("acc").result

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(16)))
    assert results == [str(i + 10) for i in range(16)]
    for s in sessions:
        s.close()


def test_waiting_cells_do_not_block_each_other(sandbox):
    sessions = [sandbox.session() for _ in range(8)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: s.run("import time; time.sleep(0.5); 'done'"), sessions))
    assert all(r.result == "'done'" for r in results)
    assert time.perf_counter() - t0 < 2.0  # 8 x 0.5 s serially would be 4 s
    for s in sessions:
        s.close()


def test_sessions_opened_from_many_threads_at_once(sandbox):
    with ThreadPoolExecutor(16) as pool:
        sessions = list(pool.map(lambda _: sandbox.session(), range(32)))
    assert len({s.uid for s in sessions}) == 32
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda s: s.run("import os\nos.getuid()").result, sessions))
    assert sorted(results) == sorted(str(s.uid) for s in sessions)
    for s in sessions:
        s.close()
