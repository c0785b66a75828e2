"""A fork bomb stays within max_procs and is gone after the cell's time limit."""

import pytest

from .sandbox_helpers import assert_contained, host_pids_of_uid, wait_until

# a docker sandbox bounds processes with its container's pids limit (its sessions share one uid, so
# RLIMIT_NPROC per family does not apply there), and its processes have no host uid to count
pytestmark = pytest.mark.local_only("RLIMIT_NPROC per session family, counted through host uids")

BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
SETSID_BOMB = (
    "import os\nwhile True:\n    try:\n        if os.fork() == 0:\n            os.setsid()\n"
    "    except OSError:\n        pass"
)


def _bomb(sb, code):
    s = sb.session()
    s.run("kept = 1")
    probe = sb.session().run("import resource; resource.getrlimit(resource.RLIMIT_NPROC)[0]")
    assert probe.result == "32"
    r = s.run(code, timeout=1.5)
    assert r.timed_out
    assert s.run("kept").result == "1"  # the session survived with its state
    # only the kernel is left (its predecessor may still be exiting)
    assert wait_until(lambda: len(host_pids_of_uid(sb.host_uid(s.uid))) == 1)
    assert_contained(sb)


def test_fork_bomb(fresh_sandbox):
    _bomb(fresh_sandbox, BOMB)


def test_fork_bomb_escaping_its_process_group(fresh_sandbox):
    _bomb(fresh_sandbox, SETSID_BOMB)
