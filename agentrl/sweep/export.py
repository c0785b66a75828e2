"""A sweep's results without its weights: what the report reads, copied to a folder that can be kept (in a
repository, beside a paper) and read again.

The copy has the sweep's layout: `agentrl sweep --spec S --runs-dir COPY --report` rebuilds the report from it, and
`agentrl sweep --spec S --runs-dir COPY` runs what is missing (each finished run counts as done).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agentrl.sweep.runner import sweep_dir, sweep_runs
from agentrl.sweep.spec import SweepSpec

RUN_FILES = ("config.yaml", "summary.json", "metrics.jsonl")
"""Per finished run: its resolved config, its summary and every step's metrics (no rollouts, no checkpoints)."""
SWEEP_FILES = ("sweep.yaml", "report.json", "report.md", "report.html", "curves.png")


def export_results(spec: SweepSpec, runs_dir: str | Path, dest: str | Path) -> int:
    """Copy the sweep's spec, report and each finished run's RUN_FILES under `dest`; returns the runs copied."""
    source, target = sweep_dir(spec, runs_dir), sweep_dir(spec, dest)
    target.mkdir(parents=True, exist_ok=True)
    for name in SWEEP_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    done = [run for run in sweep_runs(spec, runs_dir) if run.state() == "done"]
    for run in done:
        copy = target / run.path.relative_to(source)
        copy.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            shutil.copy2(run.path / name, copy / name)
    return len(done)
