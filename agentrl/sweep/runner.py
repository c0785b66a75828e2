"""Run a sweep's runs one after another; running the same sweep again picks up where it stopped.

A run whose `summary.json` exists is done and never run again; one with metrics but no summary was interrupted
and resumes from its last checkpoint (as `agentrl train --resume` does); a run that fails is recorded and the
sweep goes on, so one bad configuration costs only its own run. Ctrl-C stops the sweep at once, and leaves every
run resumable.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentrl.config import config_to_yaml
from agentrl.errors import AgentRLError
from agentrl.sweep.spec import Point, SweepSpec
from agentrl.tasks import task_config
from agentrl.train.checkpoint import list_checkpoints
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import Hooks, train

State = Literal["done", "interrupted", "failed", "pending"]


@dataclass(frozen=True)
class SweepRun:
    point: Point
    seed: int
    path: Path

    @property
    def run_name(self) -> str:
        return f"{self.point.label}/seed-{self.seed}"

    @property
    def failure(self) -> Path:
        return self.path / "failure.txt"

    def state(self) -> State:
        run = RunDir(self.path)
        if run.summary.is_file():
            return "done"
        if self.failure.is_file():
            return "failed"
        return "interrupted" if run.metrics.is_file() else "pending"


def sweep_dir(spec: SweepSpec, runs_dir: str | Path) -> Path:
    return Path(runs_dir) / spec.name


def sweep_runs(spec: SweepSpec, runs_dir: str | Path) -> list[SweepRun]:
    """Every run of the sweep, point by point, seed by seed."""
    root = sweep_dir(spec, runs_dir)
    return [
        SweepRun(point, seed, root / point.label / f"seed-{seed}")
        for point in spec.points()
        for seed in range(spec.seeds)
    ]


def save_spec(spec: SweepSpec, runs_dir: str | Path) -> None:
    """Write the spec beside its runs; a different spec under the same name is refused (its runs would mix)."""
    path = sweep_dir(spec, runs_dir) / "sweep.yaml"
    text = config_to_yaml(spec)
    if path.is_file() and path.read_text() != text:
        raise AgentRLError(
            f"{path.parent} holds a different sweep (its spec: {path}); give this one another --name, "
            "or run that spec again to resume it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run_one(spec: SweepSpec, run: SweepRun, runs_dir: str | Path, hooks: Hooks) -> None:
    """Train one grid point at one seed: a fresh run, or the rest of an interrupted one."""
    overrides = [*spec.sets, *run.point.overrides, f"train.seed={run.seed}"]
    overrides += [f"run.runs_dir={sweep_dir(spec, runs_dir)}", f"run.name={run.run_name}"]
    cfg, task = task_config(spec.task, None, overrides)
    rundir = RunDir(run.path)
    resume = bool(list_checkpoints(rundir.checkpoints))
    if not resume:  # stopped before its first checkpoint: start it over
        for partial in (rundir.metrics, rundir.rollouts):
            partial.unlink(missing_ok=True)
        rundir = RunDir.create(cfg, task.name)
    train(cfg, task, rundir, resume=resume, hooks=hooks)


def run_sweep(
    spec: SweepSpec,
    runs_dir: str | Path,
    hooks_for: Callable[[SweepRun], AbstractContextManager[Hooks]] = lambda run: nullcontext(Hooks()),
    on_state: Callable[[SweepRun, State], None] = lambda run, state: None,
) -> dict[State, int]:
    """Run every run that is not done (failed ones are tried again); returns how many ended in each state."""
    save_spec(spec, runs_dir)
    counts: dict[State, int] = {"done": 0, "failed": 0}
    for run in sweep_runs(spec, runs_dir):
        if run.state() == "done":
            counts["done"] += 1
            on_state(run, "done")
            continue
        run.failure.unlink(missing_ok=True)
        try:
            with hooks_for(run) as hooks:
                run_one(spec, run, runs_dir, hooks)
        except Exception as exc:  # a failed run is a result: recorded, and the sweep goes on
            run.path.mkdir(parents=True, exist_ok=True)
            run.failure.write_text("".join(traceback.format_exception(exc)))
            counts["failed"] += 1
            on_state(run, "failed")
            continue
        counts["done"] += 1
        on_state(run, "done")
    return counts
