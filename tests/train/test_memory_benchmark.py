"""benchmarks/memory.py runs end to end (at a small shape) and prints one row per memory setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_memory_benchmark_prints_each_setting_against_fp32():
    command = [sys.executable, "benchmarks/memory.py", "--shape", "small", "--rows", "2", "--tokens", "64"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines()[2:]}
    assert set(rows) == {"fp32", "bf16+ckpt", "bf16+ckpt+lora"}
    assert rows["fp32"][1] == "1.00" and rows["fp32"][3] == "1.00"  # the baseline's own ratios
    assert all(float(v[0]) > 0 and float(v[2]) > 0 for v in rows.values())
    assert float(rows["bf16+ckpt+lora"][4].rstrip("M")) < float(rows["fp32"][4].rstrip("M"))  # adapters only
