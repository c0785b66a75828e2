"""benchmarks/shared_prefix.py runs end to end at toy size and prints, per sampler, the shared share of tokens and
the update's speed-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_shared_prefix_benchmark_prints_tree_and_chain_rows():
    command = [sys.executable, "benchmarks/shared_prefix.py", "--tasks", "arith-python", "--shape", "2,2,1"]
    command += ["--prompts", "2", "--sft-steps", "5", "--demos", "16", "--repeats", "1"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line.split("│")[1:-1] for line in run.stdout.splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in row[:2]] for row in rows] == [
        ["arith-python", "tree"],
        ["arith-python", "chain G=8"],
    ]
    for row in rows:
        before, after = (int(n.replace(",", "")) for n in row[4].split("->"))
        assert after < before and row[3].strip().endswith("%")
        assert all(float(cell.strip().rstrip("x")) > 0 for cell in row[5:10])  # seconds and both speed-ups
