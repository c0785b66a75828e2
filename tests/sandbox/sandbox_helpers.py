"""Checks the sandbox tests share: containment after an attack, and what runs on the host."""

from __future__ import annotations

import functools
import os
import time

from agentrl.errors import AgentRLError
from agentrl.sandbox.docker import DEFAULT_IMAGE, engine


def assert_contained(sb) -> None:
    """After an attack: the host process lives and a new session in the same sandbox works."""
    assert os.getpid() > 0
    s = sb.session()
    try:
        r = s.run("6 * 7", timeout=10)
        assert r.ok, r
        assert r.result == "42"
    finally:
        s.close()


def host_pids_of_uid(host_uid: int) -> list[int]:
    """Host pids running as `host_uid` (zombies excluded)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == host_uid and not fields["State"].strip().startswith("Z"):
            pids.append(int(name))
    return pids


def host_pids_in_pid_namespace(inode: int) -> list[int]:
    """Host pids inside the pid namespace with this inode (zombies excluded: the host's init
    reaps the container's init in its own time)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}/ns/pid").st_ino != inode:
                    continue
                with open(f"/proc/{name}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[-1].split()[0] != b"Z":
                        pids.append(int(name))
            except OSError:
                continue
    return pids


def wait_until(check, seconds: float = 5.0) -> bool:
    """Poll `check` until it holds or `seconds` pass; return its last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return False


@functools.cache
def docker_unavailable() -> str | None:
    """Why the docker backend cannot run here (None when it can); asked once per test run."""
    try:
        client = engine()  # the backend's own check: the SDK installed, an engine answering
    except AgentRLError as e:
        return str(e)
    import docker

    try:
        client.images.get(DEFAULT_IMAGE)
    except docker.errors.ImageNotFound:
        return f"no image {DEFAULT_IMAGE}: docker build -t agentrl-sandbox -f sandboxes/Dockerfile ."
    except Exception as e:
        return f"the Docker engine could not list images ({type(e).__name__}: {e})"
    finally:
        client.close()
    return None
