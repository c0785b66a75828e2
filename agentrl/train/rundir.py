"""The run directory: resolved config, append-only metrics and rollouts, checkpoints, summary.

runs/NAME/
  config.yaml        the resolved config
  metrics.jsonl      one line per step (and per stage: sft, eval)
  rollouts.jsonl     every trajectory: token ids, text, reward, per step
  checkpoints/       step-NNNNNN/ (atomic; only the newest few are kept)
  sft_model/         the policy before RL (never pruned; the reference model of the KL term)
  rl_start.pt        the cold start's log records and RNG states (another run's RL can start from it)
  summary.json       pass@1 before and after RL
  tensorboard/       TensorBoard event files (train.loggers: tensorboard)
  wandb/, wandb-id   the W&B run's local files, and its id (train.loggers: wandb)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from agentrl.config import Config, build_config, config_to_yaml, read_yaml
from agentrl.errors import AgentRLError


class RunDir:
    def __init__(self, path: Path):
        self.path = path
        self.metrics = path / "metrics.jsonl"
        self.rollouts = path / "rollouts.jsonl"
        self.checkpoints = path / "checkpoints"
        self.sft_model = path / "sft_model"
        self.rl_start = path / "rl_start.pt"
        self.summary = path / "summary.json"
        self.config = path / "config.yaml"
        self.tensorboard = path / "tensorboard"
        self.wandb_id = path / "wandb-id"

    @classmethod
    def create(cls, cfg: Config, task_name: str) -> RunDir:
        name = cfg.run.name or f"{task_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = Path(cfg.run.runs_dir) / name
        if (path / "metrics.jsonl").exists():
            raise AgentRLError(f"run directory {path} already holds a run: pass --resume, or another run.name")
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.config.write_text(config_to_yaml(cfg))
        return run

    @classmethod
    def find(cls, cfg: Config, task_name: str) -> RunDir:
        """The run to resume: run.name if given, else the newest run of this task."""
        root = Path(cfg.run.runs_dir)
        if cfg.run.name:
            path = root / cfg.run.name
        else:
            runs = sorted(root.glob(f"{task_name}-*/config.yaml"), key=lambda p: p.stat().st_mtime)
            if not runs:
                raise AgentRLError(f"nothing to resume: no run of {task_name} under {root}/")
            path = runs[-1].parent
        if not (path / "config.yaml").is_file():
            raise AgentRLError(f"nothing to resume at {path}: no config.yaml there")
        return cls(path)

    def saved_config(self, overrides: list[str]) -> Config:
        return build_config([read_yaml(self.config)], overrides)

    def append(self, file: Path, record: dict[str, Any]) -> None:
        self.append_many(file, [record])

    def append_many(self, file: Path, records: list[dict[str, Any]]) -> None:
        """Append JSON lines and fsync: what a step wrote survives a crash."""
        with file.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after `step` (written before a crash, but not covered by a checkpoint)."""
        for file in (self.metrics, self.rollouts):
            if not file.exists():
                continue
            kept = []
            for line in file.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by the crash
                if record.get("step", 0) <= step:
                    kept.append(line + "\n")
            file.write_text("".join(kept))

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]
