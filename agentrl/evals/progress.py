"""Eval progress: a rich progress bar per entry (problems done of total), or plain log lines with --quiet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from agentrl.evals.sampler import Hooks


@contextmanager
def eval_progress(quiet: bool, console: Console) -> Iterator[Hooks]:
    if quiet:

        def entry(label: str, total: int, done: int) -> None:
            console.print(f"{label}: {total} problems, {done} already stored", markup=False, soft_wrap=True)

        yield Hooks(entry=entry, log=lambda message: console.print(message, markup=False, soft_wrap=True))
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("problems"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    current: dict[str, int] = {}

    def entry(label: str, total: int, done: int) -> None:
        current["id"] = progress.add_task(escape(label), total=total)

    def advance(problems: int) -> None:
        progress.update(current["id"], advance=problems)

    with progress:
        yield Hooks(
            entry=entry,
            advance=advance,
            log=lambda message: progress.console.print(message, markup=False, soft_wrap=True),
        )
