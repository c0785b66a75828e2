"""Helpers for the task-authoring tests: the CLI run in-process, and the broken task fixtures."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import agentrl  # noqa: F401  (the in-process CLI fixture, shared)

BROKEN = Path(__file__).resolve().parent / "broken"
