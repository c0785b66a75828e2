"""The `agentrl` command line: thin, it parses, loads the config and calls into the package.

Errors a user can cause print as one line (`--debug` shows the traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from agentrl.errors import AgentRLError

app = typer.Typer(help="RL post-training of tool-using LLM agents.", no_args_is_help=True, add_completion=False)
tasks_app = typer.Typer(help="List and inspect tasks.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
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


def resolve_config(task: str, config: Path | None, overrides: list[str]):
    from agentrl.config import build_config, read_yaml
    from agentrl.tasks import load_task

    loaded = load_task(task)
    layers = [{"task": task}, loaded.spec.defaults]
    if config is not None:
        layers.append(read_yaml(config))
    return build_config(layers, overrides), loaded


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a config key: --set train.steps=10.")]


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
) -> None:
    """Train a policy on TASK: cold-start SFT on expert demonstrations, then RL; prints pass@1 before and after."""
    from agentrl.config import config_to_yaml
    from agentrl.train.progress import progress_hooks
    from agentrl.train.rundir import RunDir
    from agentrl.train.trainer import train as run_training

    cfg, loaded = resolve_config(task, config, set_ or [])
    if resume:
        run = RunDir.find(cfg, loaded.name)
        cfg = run.saved_config(set_ or [])
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


@tasks_app.command("list")
def tasks_list() -> None:
    """Show the bundled tasks."""
    from rich.table import Table

    from agentrl.tasks import list_tasks

    table = Table("task", "tools", "format", "description")
    for t in list_tasks():
        table.add_row(t.name, ", ".join(t.spec.tools), t.spec.format, t.spec.description)
    Console().print(table)


def run() -> None:
    """Entry point: AgentRLError prints one line and exits 2 (the traceback only with --debug)."""
    try:
        code = app(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except AgentRLError as exc:
        if STATE["debug"]:
            raise
        console.print(f"[red]error:[/] {exc}")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        console.print("interrupted: resume with --resume")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
