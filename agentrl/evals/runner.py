"""`agentrl eval`: resolve tasks and models, sample every (task, model, tools on/off) entry (agentrl.evals.sampler),
then compute pass@k and the rest, compare entries, and write the reports into the output directory."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from agentrl.evals.metrics import aggregate, compare, comparison_pairs, problem_metrics
from agentrl.evals.models import ResolvedModel, resolve_models
from agentrl.evals.sampler import Entry, Hooks, Sampler, TaskRun, entry_key
from agentrl.evals.samples import SampleStore, problem_uid
from agentrl.evals.spec import EvalSpec
from agentrl.tasks import Problem, task_config
from agentrl.train.rundir import RunDir

PROBLEM_SEED = 0
"""The test problems the trainer's held-out pass@1 uses (`evaluate` draws with seed 0)."""


def resolve_tasks(spec: EvalSpec) -> list[TaskRun]:

    runs = []
    for ref in spec.tasks:
        cfg, task = task_config(ref.name, Path(spec.config) if spec.config else None, [*spec.set, *ref.set])
        split = ref.split or spec.split
        count = ref.problems or spec.problems or cfg.eval.problems
        runs.append(TaskRun(ref, task, cfg, split, task.problems(split, count, seed=PROBLEM_SEED)))
    return runs


def output_dir(spec: EvalSpec, models: list[ResolvedModel], runs_dir: str) -> Path:
    """--out; else the run's eval/ folder when every model is from one run; else the newest
    runs/eval-NAME-* holding this same eval (so a re-run resumes it), else a new runs/eval-NAME-TIME."""
    if spec.out:
        return Path(spec.out)
    runs = {m.run for m in models}
    if len(runs) == 1 and None not in runs:
        return next(iter(runs)) / "eval"
    name = spec.name or Path(spec.tasks[0].name).name
    wanted = spec_record(spec)
    for candidate in sorted(Path(runs_dir).glob(f"eval-{name}-*/spec.json"), reverse=True):
        if json.loads(candidate.read_text()) == wanted:
            return candidate.parent
    stamp = f"eval-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    fresh, count = Path(runs_dir) / stamp, 1
    while fresh.exists():  # another eval started in the same second
        count += 1
        fresh = Path(runs_dir) / f"{stamp}-{count}"
    return fresh


def spec_record(spec: EvalSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude={"out"})


def entry_result(entry: Entry, ks: list[int]) -> dict[str, Any]:
    """Per-problem metrics in problem order, the aggregate, and one correct and one wrong example transcript."""
    problems = []
    for p in entry.task.problems:
        uid = problem_uid(p)
        problems.append(
            {"uid": uid, "id": p.id, "prompt": p.prompt, "answer": p.answer, **problem_metrics(entry.samples[uid], ks)}
        )
    records = [r for group in entry.samples.values() for r in group]
    examples = {}
    for r in records:
        examples.setdefault("correct" if r["correct"] else "wrong", r)
    return {
        "label": entry.label,
        "model": entry.model.describe(),
        "model_index": entry.model_index,
        "tools": entry.tools,
        "key": entry.key,
        "aggregate": aggregate(problems, records, ks),
        "problems": problems,
        "examples": {kind: _example(r, entry.task.problems) for kind, r in sorted(examples.items())},
    }


def _example(record: dict, problems: list[Problem]) -> dict[str, Any]:
    problem = next(p for p in problems if problem_uid(p) == record["problem"])
    return {"prompt": problem.prompt, "expected": problem.answer, **record}


def package_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("agentrl", "torch", "transformers", "tokenizers", "numpy", "matplotlib", "math-verify"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_eval(spec: EvalSpec, hooks: Hooks | None = None, command: str = "") -> tuple[Path, dict[str, Any]]:
    """Sample what is missing, compute every metric and write the reports; returns (output dir, report as
    stored in report.json: its keys are strings).

    `command` is the command line that ran the eval, shown in the reports so that they say how to reproduce.
    """
    from agentrl.evals.report import write_reports

    hooks = hooks or Hooks()
    started = time.perf_counter()
    tasks = resolve_tasks(spec)
    models = resolve_models(spec.models)
    out = output_dir(spec, models, tasks[0].cfg.run.runs_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec_record(spec), indent=2))
    hooks.log(f"eval directory: {out}")
    entries = [Entry(task, model, i, tools) for task in tasks for i, model in enumerate(models) for tools in spec.tools]
    with torch_threads(tasks[0].cfg.train.threads), ExitStack() as stack:
        sampler = Sampler(SampleStore(out / "samples.jsonl"), spec, hooks, stack)
        for entry in entries:
            entry.key = entry_key(entry.task, entry.model, entry.tools, spec)
            sampler.run(entry)
    report = build_report(spec, tasks, models, entries, command, out)
    report["sampled_trajectories"] = sampler.sampled
    report["reused_trajectories"] = sum(len(g) for e in entries for g in e.samples.values()) - sampler.sampled
    report["wall_seconds"] = time.perf_counter() - started
    return out, write_reports(report, out)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` (None: unchanged) for the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_report(
    spec: EvalSpec, tasks: list[TaskRun], models: list[ResolvedModel], entries: list[Entry], command: str, out: Path
) -> dict[str, Any]:
    """Everything the report files show, per task: each entry's metrics and the comparisons between entries."""
    report: dict[str, Any] = {
        "title": spec.name or f"eval of {', '.join(t.task.name for t in tasks)}",
        "description": spec.description,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": command,
        "out": str(out),
        "spec": spec_record(spec),
        "versions": package_versions(),
        "tasks": [],
        "training": training_curves(models),
    }
    for task in tasks:
        results = [entry_result(e, spec.k) for e in entries if e.task is task]
        comparisons = [
            row
            for pair in comparison_pairs(results)
            for row in compare(results[pair.a], results[pair.b], spec.k, pair.factor)
        ]
        report["tasks"].append(
            {
                "task": task.task.name,
                "split": task.split,
                "problems": len(task.problems),
                "n": spec.n,
                "k": spec.k,
                "tools_available": list(task.task.spec.tools),
                "config": task.cfg.model_dump(mode="json"),
                "entries": results,
                "comparisons": comparisons,
            }
        )
    return report


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a line cut short (a run still writing, or crashed) is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def training_curves(models: list[ResolvedModel]) -> list[dict[str, Any]]:
    """The metrics.jsonl of each run a model comes from (once per run), for the training-curve plots."""
    curves = []
    for run in dict.fromkeys(m.run for m in models if m.run is not None):
        # a metric with nothing to average (first_code_pos on a task without code) is NaN there: None here,
        # since report.json is strict JSON
        metrics = [{k: None if v != v else v for k, v in row.items()} for row in read_jsonl(RunDir(run).metrics)]
        if metrics:
            labels = [m.label for m in models if m.run == run]
            curves.append({"run": str(run), "name": run.name, "models": labels, "metrics": metrics})
    return curves
