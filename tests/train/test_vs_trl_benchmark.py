"""benchmarks/vs_trl.py runs both frameworks end to end at toy size (where TRL is installed) and prints, per
comparison, a row per framework, their speed ratio and the advantage check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="TRL is not installed (pip install 'agentrl[trl]')")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_trl_benchmark_runs_both_frameworks_on_both_tasks():
    command = [sys.executable, "benchmarks/vs_trl.py", "--steps", "2", "--seeds", "1", "--prompts", "2"]
    command += ["--group", "2", "--sft-steps", "5", "--threads", "1", "--parts", "single", "multi"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in run.stdout.splitlines() if "│" in line]
    results = [row for row in rows if row[1] in ("agentrl", "TRL")]
    assert [(row[0], row[1]) for row in results] == [
        ("single-turn tiny", "agentrl"),
        ("single-turn tiny", "TRL"),
        ("multi-turn qwen2.5 fixture", "agentrl"),
        ("multi-turn qwen2.5 fixture", "TRL"),
    ]
    for row in results:
        assert all(float(row[i]) > 0 for i in (2, 3, 4, 5, 6)) and len(row[8].split()) == 2  # 2 steps
        assert float(row[9]) >= 0  # tool calls per completion
    assert len(re.findall(r"TRL / agentrl s/step", run.stdout)) == 2
    checks = [json.loads(block) for block in re.findall(r"^\{\n.*?^\}", run.stdout, re.S | re.M)]
    assert len(checks) == 2
    for check in checks:
        (numbers,) = check.values()
        assert numbers["completions"] == 4 and numbers["same, agentrl with eps=1e-4"] < 1e-5
