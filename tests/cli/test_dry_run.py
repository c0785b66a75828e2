"""`agentrl train TASK --dry-run` only prints: run in an empty folder, it leaves the folder empty."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("backend", ["local", "verl"])
def test_a_dry_run_writes_nothing_to_the_working_folder(tmp_path, backend):
    command = [f"{sys.prefix}/bin/agentrl", "train", "arith-python", "--dry-run", "--backend", backend]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []
    if backend == "verl":  # it says where a real launch would write verl's files
        assert f"# run directory: {tmp_path.resolve()}/runs/arith-python-" in result.stdout
