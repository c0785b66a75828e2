"""Broken on purpose: importing this module fails (a misspelt name)."""

from agentrl.tasks import in_splitt  # noqa: F401


def generate(split, n, seed):
    return []
