"""Nothing is left running after close: not the session's processes, not the container."""

import time

import pytest

from agentrl.sandbox import open_sandbox

from .sandbox_helpers import host_pids_in_pid_namespace, host_pids_of_uid, wait_until


@pytest.mark.local_only("counted through host uids; test_docker_lifetime.py checks the docker kernels' end")
def test_session_close_kills_its_processes(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()")
    f = s.fork()
    uid = fresh_sandbox.host_uid(s.uid)
    assert host_pids_of_uid(uid)
    s.close()
    assert f.run("1").result == "1"  # a fork lives on while its family is open
    f.close()
    assert wait_until(lambda: host_pids_of_uid(uid) == [])


def test_sandbox_close_ends_the_container():
    sb = open_sandbox()
    sessions = [sb.session() for _ in range(3)]
    for s in sessions:
        s.run("import time")
    sessions[0].run("time.sleep(30)", timeout=0.2)
    inode = sb.pid_namespace
    assert host_pids_in_pid_namespace(inode)
    sb.close()
    assert wait_until(lambda: host_pids_in_pid_namespace(inode) == [])


def test_cell_running_at_close():
    import threading

    sb = open_sandbox()
    s = sb.session()
    inode = sb.pid_namespace
    t = threading.Thread(target=lambda: s.run("while True: pass", timeout=30))
    t.start()
    time.sleep(0.3)
    sb.close()
    t.join(10)
    assert not t.is_alive()
    assert wait_until(lambda: host_pids_in_pid_namespace(inode) == [])
