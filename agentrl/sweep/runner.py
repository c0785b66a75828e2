"""Run a sweep's runs, one after another or several at once; running the same sweep again picks up where it stopped.

A run whose `summary.json` exists is done and never run again; one with metrics but no summary was interrupted
and resumes from its last checkpoint (as `agentrl train --resume` does); a run that fails is recorded and the
sweep goes on, so one bad configuration costs only its own run. Ctrl-C stops the sweep at once, and leaves every
run resumable.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from rich.console import Console

from agentrl.config import Config, config_to_yaml, read_yaml
from agentrl.errors import AgentRLError
from agentrl.sweep.spec import Point, SweepSpec
from agentrl.tasks import task_config
from agentrl.train.checkpoint import list_checkpoints
from agentrl.train.progress import progress_hooks
from agentrl.train.rundir import RunDir
from agentrl.train.start import shares_cold_start
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
        for point in spec.grid_points()
        for seed in range(spec.seeds)
    ]


def save_spec(spec: SweepSpec, runs_dir: str | Path) -> None:
    """Write the spec beside its runs; a different spec under the same name is refused (its runs would mix)."""
    path = sweep_dir(spec, runs_dir) / "sweep.yaml"
    text = config_to_yaml(spec)
    # compared as specs, not as text: a spec saved by an older agentrl reads a field added since as its default
    if path.is_file() and SweepSpec.model_validate(read_yaml(path)) != spec:
        raise AgentRLError(
            f"{path.parent} holds a different sweep (its spec: {path}); give this one another --name, "
            "or run that spec again to resume it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


BUDGET_KEYS = {
    "tokens": ("train.max_sampled_tokens", "rl_sampled_tokens"),
    "seconds": ("train.max_rl_seconds", "rl_seconds"),
}
"""--match -> (the config key that stops RL at a budget, the summary figure a finished run spent of it)."""


def budget_settings(spec: SweepSpec, run: SweepRun, runs_dir: str | Path, base: list[str]) -> list[str]:
    """The settings that hold `run` to the sweep's budget: nothing when steps are matched; else the budget (given,
    or spent by the baseline's run of the same seed) and a steps cap high enough to spend it."""
    if spec.match == "steps":
        return []
    key, spent = BUDGET_KEYS[spec.match]
    baseline = spec.baseline_point()
    budget = spec.budget
    if budget is None:
        if run.point == baseline:
            return []
        reference = SweepRun(baseline, run.seed, sweep_dir(spec, runs_dir) / baseline.label / f"seed-{run.seed}")
        if reference.state() != "done":
            raise AgentRLError(
                f"{run.run_name} spends the {spec.match} of {reference.run_name}, which has not finished "
                f"(it is {reference.state()}); run the sweep again once it has"
            )
        budget = json.loads(RunDir(reference.path).summary.read_text())[spent]
    steps = spec.max_steps or 4 * task_config(spec.task, None, base)[0].train.steps
    value = int(budget) if spec.match == "tokens" else float(budget)
    return [f"{key}={value}", f"train.steps={steps}"]


def run_one(spec: SweepSpec, run: SweepRun, runs_dir: str | Path, hooks: Hooks) -> None:
    """Train one grid point at one seed: a fresh run, or the rest of an interrupted one."""
    overrides = [*spec.sets, *run.point.overrides, f"train.seed={run.seed}"]
    overrides += budget_settings(spec, run, runs_dir, overrides)
    overrides += [f"run.runs_dir={sweep_dir(spec, runs_dir)}", f"run.name={run.run_name}"]
    cfg, task = task_config(spec.task, None, overrides)
    rundir = RunDir(run.path)
    resume = bool(list_checkpoints(rundir.checkpoints))
    source = None
    if not resume:  # stopped before its first checkpoint: start it over
        for partial in (rundir.metrics, rundir.rollouts):
            partial.unlink(missing_ok=True)
        rundir = RunDir.create(cfg, task.name)
        source = cold_start_source(spec, run, runs_dir, cfg)
    train(cfg, task, rundir, resume=resume, hooks=hooks, start_from=source)


def cold_start_source(spec: SweepSpec, run: SweepRun, runs_dir: str | Path, cfg: Config) -> RunDir | None:
    """Another run of the same seed whose cold start (SFT, evaluation before RL) `run` would repeat, if one has
    finished it and the spec shares cold starts."""
    if not spec.share_cold_start:
        return None
    for other in sweep_runs(spec, runs_dir):
        if other.seed == run.seed and other != run and shares_cold_start(cfg, RunDir(other.path)):
            return RunDir(other.path)
    return None


def attempt(spec: SweepSpec, run: SweepRun, runs_dir: str | Path, hooks: AbstractContextManager[Hooks]) -> State:
    """Run one run to its end: "done", or "failed" with its traceback in failure.txt (a failed run is a result,
    and the sweep goes on)."""
    run.failure.unlink(missing_ok=True)
    try:
        with hooks as given:
            run_one(spec, run, runs_dir, given)
    except Exception as exc:
        run.path.mkdir(parents=True, exist_ok=True)
        run.failure.write_text("".join(traceback.format_exception(exc)))
        return "failed"
    return "done"


def _attempt_in_worker(spec_data: dict, index: int, runs_dir: str, threads: int) -> State:
    """`attempt` in a worker process: its log lines go to the run's train.log."""
    torch.set_num_threads(threads)
    spec = SweepSpec.model_validate(spec_data)
    run = sweep_runs(spec, runs_dir)[index]
    run.path.mkdir(parents=True, exist_ok=True)
    with (run.path / "train.log").open("a") as log:
        return attempt(spec, run, runs_dir, progress_hooks(True, Console(file=log, width=120)))


def waits_for(spec: SweepSpec, run: SweepRun, runs: list[SweepRun]) -> SweepRun | None:
    """The run that must finish before `run` starts: the baseline's run of its seed, when `run` spends what that
    one spent."""
    if spec.match == "steps" or spec.budget is not None or run.point == spec.baseline_point():
        return None
    return next(r for r in runs if r.point == spec.baseline_point() and r.seed == run.seed)


def run_sweep(
    spec: SweepSpec,
    runs_dir: str | Path,
    hooks_for: Callable[[SweepRun], AbstractContextManager[Hooks]] = lambda run: nullcontext(Hooks()),
    on_state: Callable[[SweepRun, State], None] = lambda run, state: None,
    parallel: int = 1,
) -> dict[State, int]:
    """Run every run that is not done (failed ones are tried again), `parallel` at a time (each in a process of
    its own, with its share of the CPU threads, when more than one); returns how many ended in each state. The runs
    others wait for go first."""
    save_spec(spec, runs_dir)
    counts: dict[State, int] = {"done": 0, "failed": 0}
    runs = sweep_runs(spec, runs_dir)

    def finished(run: SweepRun, state: State) -> None:
        counts[state] += 1
        on_state(run, state)

    todo = []
    for run in runs:
        if run.state() == "done":
            finished(run, "done")
        else:
            todo.append(run)
    todo.sort(key=lambda run: waits_for(spec, run, runs) is not None)
    if parallel == 1:
        for run in todo:
            finished(run, attempt(spec, run, runs_dir, hooks_for(run)))
    else:
        run_parallel(spec, runs, todo, runs_dir, parallel, finished)
    return counts


def run_parallel(
    spec: SweepSpec,
    runs: list[SweepRun],
    todo: list[SweepRun],
    runs_dir: str | Path,
    parallel: int,
    finished: Callable[[SweepRun, State], None],
) -> None:
    """`attempt` the runs of `todo` (some of the sweep's `runs`), `parallel` worker processes at a time, each as
    soon as the run it waits for has finished. Ctrl-C ends the workers at once (a run's checkpoints are written
    whole or not at all, so each stays resumable)."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    pool = ProcessPoolExecutor(parallel, multiprocessing.get_context("spawn"), initializer=_die_on_sigint)
    waiting, running = list(todo), {}
    unfinished = set(todo)

    def ready() -> SweepRun | None:
        return next((run for run in waiting if waits_for(spec, run, runs) not in unfinished), None)

    try:
        while waiting or running:
            while len(running) < parallel and (run := ready()) is not None:
                waiting.remove(run)
                args = (spec.model_dump(), runs.index(run), str(runs_dir), threads)
                running[pool.submit(_attempt_in_worker, *args)] = run
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                run = running.pop(future)
                try:
                    state = future.result()
                except Exception as exc:  # the worker process died (killed, out of memory)
                    run.path.mkdir(parents=True, exist_ok=True)
                    run.failure.write_text(f"its worker process died: {exc!r}\n")
                    state = "failed"
                unfinished.discard(run)
                finished(run, state)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for child in multiprocessing.active_children():
            child.terminate()
        raise
    pool.shutdown()


def _die_on_sigint() -> None:
    """A worker ends on Ctrl-C instead of raising KeyboardInterrupt into its run and taking the next one."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
