"""The docker backend keeps the same promises (runs only where a Docker engine answers)."""

import pytest

from agentrl.sandbox import open_sandbox

from .sandbox_helpers import docker_unavailable

_reason = docker_unavailable()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_reason is not None, reason=str(_reason))]


def test_state_timeout_fork_and_no_network():
    with open_sandbox(backend="docker", timeout=2) as sb:
        s = sb.session()
        assert s.run("x = 41\nx + 1").result == "42"
        assert s.run("while True: pass", timeout=0.5).timed_out
        assert s.run("x").result == "41"
        f = s.fork()
        f.run("x = 0")
        assert s.run("x").result == "41"
        r = s.run("import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=1)")
        assert r.error is not None
