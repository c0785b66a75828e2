"""Threads that outlive their cell do not disturb later cells and end with the session."""

import pytest

from .sandbox_helpers import assert_contained, host_pids_of_uid, wait_until


def test_busy_thread_outliving_its_cell(fresh_sandbox):
    s = fresh_sandbox.session()
    r = s.run(
        "import threading, time\n"
        "def spin():\n    while True:\n        print('noise')\n"
        "threading.Thread(target=spin, daemon=True).start()\n"
        "time.sleep(0.1)\n'started'"
    )
    assert r.result == "'started'"
    r = s.run("x = 5\nx")
    assert r.result == "5" and "noise" not in r.stdout
    s.close()
    assert_contained(fresh_sandbox)


@pytest.mark.local_only("counted through host uids; test_docker_lifetime.py checks the docker kernels' end")
def test_non_daemon_thread_does_not_hold_the_kernel(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("import threading, time\nthreading.Thread(target=time.sleep, args=(600,)).start()")
    assert s.run("'still here'").result == "'still here'"
    uid = fresh_sandbox.host_uid(s.uid)
    s.close()
    assert wait_until(lambda: host_pids_of_uid(uid) == [])
