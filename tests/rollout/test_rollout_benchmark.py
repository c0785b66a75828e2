"""`benchmarks/rollout.py` runs end to end (on a tiny untrained model, so in seconds) and prints every row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_rollout_benchmark_prints_the_loops_the_baseline_and_the_tools_bound(tmp_path, tiny_model, tokenizer):
    tiny_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    args = ["--model", str(tmp_path), "--problems", "2", "--group", "2", "--repeats", "1"]
    run = subprocess.run(
        [sys.executable, "benchmarks/rollout.py", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "plain batched model.generate (baseline)" in run.stdout
    for schedule in ("rounds", "halves", "continuous"):
        assert f"agent loop, schedule={schedule}" in run.stdout
    assert "tool calls alone" in run.stdout
