"""Progress reporting for long work: a rich progress bar with live reward and pass rate, or log lines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers.utils import logging as hf_logging

from agentrl.train.trainer import Hooks


def describe(metrics: dict) -> str:
    if "sft_loss" in metrics:
        return f"loss {metrics['sft_loss']:.3f}"
    # the KL to the reference policy when the loss has one; else the step's own old-vs-new KL (near 0 on-policy)
    kl = f"kl(ref) {metrics['kl']:+.4f}" if "kl" in metrics else f"kl {metrics.get('approx_kl', 0.0):+.4f}"
    return (
        f"step {metrics['step']}  reward {metrics['reward_mean']:.3f}  pass {metrics['pass_rate']:.3f}  "
        f"tools {metrics['tool_calls']:.2f}  {kl}  {metrics['seconds']:.1f}s"
    )


@contextmanager
def progress_hooks(quiet: bool, console: Console) -> Iterator[Hooks]:
    # transformers' own bars (save_pretrained's "Writing model shards") would cut into these lines; its warnings
    # and errors still print
    hf_logging.disable_progress_bar()
    if quiet:
        yield Hooks(
            stage=lambda name, total: console.print(f"[{name}]", markup=False),
            advance=lambda m: console.print(describe(m)) if "step" in m else None,
            log=console.print,
        )
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
    current: dict = {}

    def stage(name: str, total: int) -> None:
        current["id"] = progress.add_task(name, total=total or None, info="")

    def advance(metrics: dict) -> None:
        progress.update(current["id"], advance=1, info=describe(metrics))

    with progress:
        yield Hooks(stage=stage, advance=advance, log=progress.console.print)
