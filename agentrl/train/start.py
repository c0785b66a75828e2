"""The start of RL, shareable: runs that differ only in what RL does start from one cold start.

A run's cold start (SFT on the task's demonstrations, then the held-out pass@1 before RL) depends on the model,
the task, the seed and the agent loop, never on the estimator, the sampler's shape, the RL budget or the RL
learning rate. The trainer saves what it produced beside `sft_model/` (`rl_start.pt`: the log records and every
RNG's state at that moment), so another run whose config differs only in RL settings can start from it, and
continue exactly as if it had run the cold start itself. A sweep shares one cold start among the points of a seed.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import torch

from agentrl.config import Config
from agentrl.train.checkpoint import restore_rng, rng_state
from agentrl.train.rundir import RunDir

RL_ONLY: dict[str, set[str] | None] = {
    "algo": None,
    "rollout": {
        "sampler",
        "tree",
        "group_size",
        "prompts_per_step",
        "temperature",
        "top_p",
        "allocation",
        "presample",
        "min_group",
        "max_group",
    },
    "train": {
        "steps",
        "problems",
        "max_sampled_tokens",
        "max_rl_seconds",
        "lr",
        "weight_decay",
        "max_grad_norm",
        "micro_batch_tokens",
        "logits_chunk_mib",
        "shared_prefix",
        "checkpoint_every",
        "keep_checkpoints",
        "loggers",
    },
    "run": None,
}
"""Config sections (None: all of it) and fields that only RL reads: two configs that agree on everything else have
the same cold start. (Evaluation samples with `eval.temperature` and the rollout's token and turn limits, so the
RL sampling temperature is RL's own.)"""


def cold_start_key(cfg: Config) -> dict[str, Any]:
    """What a run's cold start depends on: its config without the RL-only settings."""
    key = cfg.model_dump()
    for section, fields in RL_ONLY.items():
        if fields is None:
            key.pop(section)
        else:
            for field in fields:
                key[section].pop(field)
    return key


def save_start(run: RunDir, records: list[dict[str, Any]], generator: torch.Generator) -> None:
    """Write `rl_start.pt` (whole or not at all) once `sft_model/` is saved: the cold start's log records and the
    RNG states RL begins with."""
    tmp = run.rl_start.with_suffix(".tmp")
    torch.save({"records": records, "rng": rng_state(generator)}, tmp)
    os.replace(tmp, run.rl_start)


def adopt_start(source: RunDir, run: RunDir, generator: torch.Generator) -> list[dict[str, Any]]:
    """Make `source`'s cold start this run's: its SFT model copied in, the RNGs set to where its RL began; returns
    its log records (the last one is the evaluation before RL)."""
    start = torch.load(source.rl_start, weights_only=False)
    shutil.copytree(source.sft_model, run.sft_model, dirs_exist_ok=True)
    shutil.copy2(source.rl_start, run.rl_start)
    restore_rng(start["rng"], generator)
    return start["records"]


def shares_cold_start(cfg: Config, source: RunDir) -> bool:
    """Whether `source` has finished a cold start that `cfg` would reproduce."""
    return source.rl_start.is_file() and cold_start_key(source.saved_config([])) == cold_start_key(cfg)
