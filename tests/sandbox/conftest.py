"""Fixtures for the sandbox tests (the shared checks live in sandbox_helpers.py).

The security suite (test_security_*.py) runs against each backend that isolates code on this
machine's terms: `local` (bubblewrap) and `docker` (marked ``docker``; select it with ``-m docker``).
A docker variant runs where a Docker engine answers and the image `agentrl-sandbox:latest` exists
(``docker build -t agentrl-sandbox -f sandboxes/Dockerfile .``), and is skipped with the reason
otherwise. A test whose assertion only holds for the local backend carries
``@pytest.mark.local_only("why")``: its docker variant is skipped with that reason.
"""

from __future__ import annotations

import shutil

import pytest

from agentrl.sandbox import open_sandbox

from .sandbox_helpers import docker_unavailable


def pytest_configure(config):
    config.addinivalue_line("markers", "local_only(why): a security test whose assertion holds for the local backend")


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames or not metafunc.module.__name__.rpartition(".")[2].startswith(
        "test_security_"
    ):
        return
    docker_marks = [pytest.mark.docker]
    local_only = metafunc.definition.get_closest_marker("local_only")
    if local_only is not None:
        docker_marks.append(pytest.mark.skip(reason=f"local backend only: {local_only.args[0]}"))
    params = [pytest.param("local"), pytest.param("docker", marks=docker_marks)]
    metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture(scope="module")
def backend(request) -> str:
    """The sandbox backend under test: "local", or "docker" for the security suite's docker variants."""
    name = getattr(request, "param", "local")
    if name == "docker" and (why := docker_unavailable()) is not None:
        pytest.skip(why)
    return name


def _needs_bwrap(backend: str) -> None:
    if backend == "local" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")


@pytest.fixture(scope="module")
def sandbox(backend):
    """One sandbox shared by a test module (behaviour tests)."""
    _needs_bwrap(backend)
    with open_sandbox(backend, timeout=5) as sb:
        yield sb


@pytest.fixture
def fresh_sandbox(backend):
    """A small sandbox of its own, for an attack that may damage it."""
    _needs_bwrap(backend)
    with open_sandbox(backend, timeout=3, max_procs=32, memory_mb=512, disk_mb=64) as sb:
        yield sb
