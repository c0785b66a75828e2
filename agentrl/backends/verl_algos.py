"""agentrl's advantage estimators inside verl, and the verl trainer modes that feed them. Imports verl.

Every estimator in `agentrl.algos.ADVANTAGE_ESTIMATORS` is registered with verl's `register_adv_est` as
`agentrl_<name>` (agentrl_grpo, agentrl_rloo, agentrl_tree_grpo, agentrl_gtpo), so `algorithm.adv_estimator`
selects it by name and verl's own `compute_advantage` calls it. The run's shapers (`algo.shaping`, e.g. aspo)
and parameters (`algo.params`) come from the agentrl config named by $AGENTRL_CONFIG.

verl calls an estimator with token-level rewards, the response mask and the prompt uids only. Tree ids and
turn layout ride in each row's `extra_fields["agentrl"]`; the trainer modes registered here (`agentrl_sync`,
`agentrl_colocate_async`, `agentrl_separate_async`: verl's v1 trainers plus one step) read those fields for the
batch and hand them to the estimator for the duration of verl's `_compute_advantage` (`batch_rows`).

Importing this module registers everything; `setup` is the Ray worker hook that imports it in each worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

import torch
from verl.trainer.ppo import core_algos

from agentrl.algos import ADVANTAGE_ESTIMATORS, compute_advantages
from agentrl.backends.verl_config import CONFIG_ENV
from agentrl.backends.verl_rows import advantage_inputs
from agentrl.config import Config, build_config, read_yaml
from agentrl.errors import AgentRLError

TRAINER_MODES = ("sync", "colocate_async", "separate_async")

_ROWS: ContextVar[list[Mapping[str, Any]] | None] = ContextVar("agentrl_verl_rows", default=None)


@contextmanager
def batch_rows(rows: Sequence[Mapping[str, Any]]) -> Iterator[None]:
    """Within this block, agentrl estimators read the batch's rows (`extra_fields` dicts, in batch order)."""
    token = _ROWS.set(list(rows))
    try:
        yield
    finally:
        _ROWS.reset(token)


@cache
def _run_config(path: str) -> Config:
    return build_config([read_yaml(path)])


def estimator_settings() -> tuple[list[str], dict[str, Any]]:
    """The run's advantage shapers and parameters ($AGENTRL_CONFIG), else none."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return [], {}
    cfg = _run_config(path)
    return list(cfg.algo.shaping), dict(cfg.algo.params)


def verl_estimator(name: str):
    """agentrl estimator `name` with verl's estimator signature: returns (advantages, returns), both [B, T]."""

    def estimator(
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: Sequence[Any] | None = None,
        config: Any = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = _ROWS.get()
        if rows is None:
            raise AgentRLError(
                f"verl estimator agentrl_{name} needs each row's tree and turn structure: run verl's trainer in "
                f"one of agentrl's modes (trainer.v1.trainer_mode=agentrl_sync), which `agentrl train --backend "
                "verl` sets"
            )
        group_ids = list(index) if index is not None else [row["agentrl"]["problem_id"] for row in rows]
        inputs = advantage_inputs(token_level_rewards, response_mask, group_ids, rows)
        shaping, params = estimator_settings()
        advantages = compute_advantages(inputs, name, shaping, **params)
        advantages = advantages.to(device=token_level_rewards.device, dtype=token_level_rewards.dtype)
        return advantages, advantages

    estimator.__name__ = estimator.__qualname__ = f"agentrl_{name}"
    estimator.__doc__ = f"agentrl's `{name}` advantage (agentrl.algos) on a verl batch."
    return estimator


def register_estimators() -> list[str]:
    """Register `agentrl_<name>` for every agentrl estimator (idempotent); returns the names."""
    names = []
    for name in ADVANTAGE_ESTIMATORS:
        key = f"agentrl_{name}"
        if key not in core_algos.ADV_ESTIMATOR_REGISTRY:
            core_algos.register_adv_est(key)(verl_estimator(name))
        names.append(key)
    return names


def _as_list(value: Any) -> list:
    return value.tolist() if hasattr(value, "tolist") else list(value)


class RowsForEstimators:
    """Mixin for verl's v1 trainers: the advantage step sees each row's `extra_fields` (agentrl's structure)."""

    def _compute_advantage(self, batch, metrics: dict):
        import transfer_queue as tq

        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
        with batch_rows(_as_list(data["extra_fields"])):
            return super()._compute_advantage(batch, metrics)


def register_trainers() -> list[str]:
    """Register `agentrl_<mode>` for each v1 trainer mode (idempotent); returns the names."""
    from verl.trainer.ppo.v1 import get_trainer_cls, register_trainer, trainer_base

    names = []
    for mode in TRAINER_MODES:
        key = f"agentrl_{mode}"
        if key not in trainer_base.TRAINER_REGISTRY:
            base = get_trainer_cls(mode)
            cls = type(f"Agentrl{base.__name__}", (RowsForEstimators, base), {"__module__": __name__})
            globals()[cls.__name__] = cls  # importable by name, as Ray and pickle expect
            register_trainer(key)(cls)
        names.append(key)
    return names


def setup() -> None:
    """Ray `worker_process_setup_hook`: importing this module has registered everything."""


register_estimators()
register_trainers()
