"""Where a run's metrics records go: metrics.jsonl always, and the trackers named in `train.loggers`.

Trackers get each record's numeric values at the record's step, named `<stage>/<key>` (rl/reward_mean,
eval_after/pass@1): sft shares step 0 with eval_before, and eval_after the last step with rl, so the bare keys of
metrics.jsonl would put an eval's pass_rate on the training curve.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

from agentrl.config import Config
from agentrl.errors import AgentRLError
from agentrl.train.rundir import RunDir

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""The package each tracker imports; agentrl's pip extra of the same name installs it."""


class MetricLogger(Protocol):
    def log(self, step: int, metrics: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The record's numbers under `<stage>/<key>`; strings (the stage itself) are left out."""
    prefix = f"{metrics['stage']}/" if "stage" in metrics else ""
    return {prefix + key: float(value) for key, value in metrics.items() if isinstance(value, int | float)}


class JsonlLogger:
    """metrics.jsonl: one JSON line per record, fsynced."""

    def __init__(self, run: RunDir):
        self.run = run

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.run.append(self.run.metrics, {"step": step, **metrics})

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """Event files in the run's tensorboard/, flushed after every record."""

    def __init__(self, log_dir: Path, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run: TensorBoard hides what the crashed session wrote at purge_step and later
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for tag, value in scalars(metrics).items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run (project agentrl) in the run directory, offline unless WANDB_API_KEY or WANDB_MODE is set.

    Its id is kept in the run directory, so a resumed run continues the same W&B run (W&B drops values for a step
    below the last one it has: steps a crashed session logged past the checkpoint keep their first values). A
    step's values are committed when the next step starts, and by close()."""

    def __init__(self, cfg: Config, run: RunDir):
        import wandb

        chosen = os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")  # else online W&B asks to log in
        self.run = wandb.init(
            project="agentrl",
            name=run.path.name,
            dir=run.path,
            config=cfg.model_dump(mode="json"),
            id=wandb_id(run.wandb_id),
            resume="allow",
            mode=None if chosen else "offline",
        )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.run.log(scalars(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


def wandb_id(path: Path) -> str:
    """The W&B run id stored at `path`, made on first use."""
    if not path.exists():
        path.write_text(secrets.token_hex(8))
    return path.read_text().strip()


class Loggers:
    """All of a run's loggers as one: each record goes to every logger; close() closes each, even if one fails."""

    def __init__(self, loggers: list[MetricLogger]):
        self.loggers = loggers

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log(step, metrics)

    def close(self) -> None:
        with ExitStack() as stack:
            for logger in self.loggers:
                stack.callback(logger.close)


def require_packages(names: list[str]) -> None:
    """A tracker whose package is missing fails now, with the install command, not at its first record."""
    for name in names:
        package = PACKAGES.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise AgentRLError(f"train.loggers: {name} needs the {package} package: pip install 'agentrl[{name}]'")


def build_loggers(cfg: Config, run: RunDir, purge_step: int | None = None) -> Loggers:
    """metrics.jsonl and the trackers of `train.loggers`. purge_step: resumed, the first step logged again."""
    names = cfg.train.loggers
    require_packages(names)
    loggers: list[MetricLogger] = [JsonlLogger(run)]
    if "tensorboard" in names:
        loggers.append(TensorBoardLogger(run.tensorboard, purge_step))
    if "wandb" in names:
        loggers.append(WandbLogger(cfg, run))
    return Loggers(loggers)
