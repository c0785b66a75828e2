"""Fixtures for the sandbox tests (the shared checks live in sandbox_helpers.py)."""

from __future__ import annotations

import shutil

import pytest

from agentrl.sandbox import open_sandbox


@pytest.fixture(scope="module")
def sandbox():
    """One local sandbox shared by a test module (behaviour tests)."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    with open_sandbox(timeout=5) as sb:
        yield sb


@pytest.fixture
def fresh_sandbox():
    """A small sandbox of its own, for an attack that may damage it."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    with open_sandbox(timeout=3, max_procs=32, memory_mb=512, disk_mb=64) as sb:
        yield sb
