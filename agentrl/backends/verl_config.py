"""agentrl's config as verl's: the Hydra overrides of `python -m verl.trainer.main_ppo`. Pure: no files, no verl.

Each agentrl setting maps to the verl key that means the same thing (learning rate, clip range, group size, KL,
...); `verl.*` settings cover what only verl has (GPUs, rollout engine); `verl.overrides` sets any verl key and
wins. `verl_launch` writes the files these overrides name and starts verl.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrl.backends.verl_rows import AGENT_NAME
from agentrl.config import Config
from agentrl.errors import AgentRLError

CONFIG_ENV = "AGENTRL_CONFIG"
"""Names the run's agentrl config file in every Ray worker (the estimators read `algo.shaping` / `algo.params`)."""
SETUP_HOOK = "agentrl.backends.verl_algos.setup"
"""Ray `worker_process_setup_hook`: registers agentrl's estimators and trainer modes in each worker."""
REWARD_FUNCTION = "pkg://agentrl.backends.verl_reward"
"""verl's custom reward function: the task's verifier."""
REWARD_MANAGER = ("pkg://agentrl.backends.verl", "AgentrlRewardManager")
"""verl's naive reward manager, with each trajectory's own `extra_info` (see `agentrl.backends.verl`)."""
VERL_MAIN = "verl.trainer.main_ppo"


@dataclass(frozen=True)
class VerlPaths:
    """Where a verl run's files live: under the agentrl run directory, `verl/`."""

    run_dir: Path
    model: Path
    """The policy verl starts from: `model.path`, or the run's `sft_model/` (tiny model after cold-start SFT)."""

    @property
    def workdir(self) -> Path:
        return self.run_dir / "verl"

    @property
    def train_file(self) -> Path:
        return self.workdir / "train.jsonl"

    @property
    def val_file(self) -> Path:
        return self.workdir / "val.jsonl"

    @property
    def agentrl_config(self) -> Path:
        return self.workdir / "agentrl.yaml"

    @property
    def agent_loops(self) -> Path:
        return self.workdir / "agent_loops.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.workdir / "checkpoints"


@dataclass(frozen=True)
class Lengths:
    """verl pads to fixed widths: the longest prompt of the data, and the rest of `model.max_length`."""

    prompt: int
    response: int


def samples_per_prompt(cfg: Config) -> int:
    """verl's `rollout.n`: the group size, or with tree sampling the kept leaves of a prompt's trees."""
    if cfg.rollout.sampler != "tree":
        return cfg.rollout.group_size
    tree = cfg.rollout.tree
    leaves = 1 + tree.expansions * tree.iterations
    if tree.keep > leaves:
        raise AgentRLError(
            f"rollout.tree.keep={tree.keep} but a tree grows only {leaves} leaves (1 + expansions * iterations): "
            "verl needs a fixed number of leaves per prompt; lower keep or raise expansions / iterations"
        )
    return tree.trees * tree.keep


def hydra_overrides(cfg: Config, paths: VerlPaths, lengths: Lengths, train_problems: int) -> list[str]:
    """verl's Hydra overrides for `cfg` (`key=value` strings; `+key` adds a key verl's schema lacks)."""
    n = samples_per_prompt(cfg)
    if cfg.train.max_sampled_tokens is not None or cfg.train.max_rl_seconds is not None:
        raise AgentRLError(
            "train.max_sampled_tokens / train.max_rl_seconds: verl runs a fixed train.steps; budgets stop RL only "
            "on the local backend"
        )
    if cfg.rollout.allocation != "uniform" or cfg.algo.filter_zero_variance or cfg.algo.reuse_responses:
        raise AgentRLError(
            "rollout.allocation / algo.filter_zero_variance / algo.reuse_responses run on the local backend only: "
            "verl samples a fixed rollout.n per prompt (its DAPO recipe's filter_groups is not mapped) and keeps no "
            "responses across steps"
        )
    per_step = cfg.rollout.prompts_per_step
    seed = cfg.train.seed
    total = lengths.prompt + lengths.response
    ours: dict[str, Any] = {
        # data: one row per problem, a step's batch is prompts_per_step rows
        "data.train_files": str(paths.train_file),
        "data.val_files": str(paths.val_file),
        "data.train_batch_size": per_step,
        "data.max_prompt_length": lengths.prompt,
        "data.max_response_length": lengths.response,
        "data.filter_overlong_prompts": False,
        "data.return_raw_chat": True,
        "data.shuffle": True,
        "data.seed": seed,
        # policy and its update
        "actor_rollout_ref.model.path": str(paths.model),
        "actor_rollout_ref.actor.strategy": cfg.verl.strategy,
        "actor_rollout_ref.actor.optim.lr": cfg.train.lr,
        "actor_rollout_ref.actor.optim.weight_decay": cfg.train.weight_decay,
        "actor_rollout_ref.actor.optim.clip_grad": cfg.train.max_grad_norm,
        "actor_rollout_ref.actor.grad_clip": cfg.train.max_grad_norm,
        "actor_rollout_ref.actor.ppo_mini_batch_size": _mini_batch(per_step, cfg.algo.minibatch_size, n),
        "actor_rollout_ref.actor.ppo_epochs": cfg.algo.ppo_epochs,
        "actor_rollout_ref.actor.use_dynamic_bsz": True,
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": max(cfg.verl.max_tokens_per_gpu, total),
        "actor_rollout_ref.actor.clip_ratio_low": cfg.algo.clip_low,
        "actor_rollout_ref.actor.clip_ratio_high": cfg.algo.clip_high,
        "actor_rollout_ref.actor.loss_agg_mode": cfg.algo.loss_agg,
        "actor_rollout_ref.actor.entropy_coeff": 0,
        "actor_rollout_ref.actor.use_kl_loss": cfg.algo.kl_coef > 0,
        "actor_rollout_ref.actor.kl_loss_coef": cfg.algo.kl_coef,
        "actor_rollout_ref.actor.kl_loss_type": cfg.algo.kl_type,
        "actor_rollout_ref.actor.data_loader_seed": seed,
        # rollout: verl's servers, agentrl's agent loop
        "actor_rollout_ref.rollout.name": cfg.verl.rollout_engine,
        "actor_rollout_ref.rollout.n": n,
        "actor_rollout_ref.rollout.temperature": cfg.rollout.temperature,
        "actor_rollout_ref.rollout.top_p": cfg.rollout.top_p,
        "actor_rollout_ref.rollout.calculate_log_probs": True,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": cfg.verl.tensor_parallel,
        "actor_rollout_ref.rollout.gpu_memory_utilization": cfg.verl.gpu_memory_utilization,
        "actor_rollout_ref.rollout.max_model_len": total,
        "actor_rollout_ref.rollout.seed": seed,
        "actor_rollout_ref.rollout.val_kwargs.n": cfg.eval.samples,
        "actor_rollout_ref.rollout.val_kwargs.temperature": cfg.eval.temperature,
        "actor_rollout_ref.rollout.val_kwargs.top_p": cfg.rollout.top_p,
        "actor_rollout_ref.rollout.val_kwargs.do_sample": True,
        "actor_rollout_ref.rollout.agent.default_agent_loop": AGENT_NAME,
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": str(paths.agent_loops),
        "actor_rollout_ref.rollout.agent.num_workers": cfg.verl.agent_workers,
        # advantage and reward
        "algorithm.adv_estimator": f"agentrl_{cfg.algo.advantage}",
        "algorithm.use_kl_in_reward": False,
        "reward.custom_reward_function.path": REWARD_FUNCTION,
        "reward.custom_reward_function.name": "compute_score",
        "reward.reward_manager.source": "importlib",
        "reward.reward_manager.module.path": REWARD_MANAGER[0],
        "reward.reward_manager.name": REWARD_MANAGER[1],
        # the run: steps, evaluation before and after, checkpoints, resources
        "trainer.total_epochs": max(1, math.ceil(cfg.train.steps * per_step / max(train_problems, 1))),
        "trainer.total_training_steps": cfg.train.steps,
        "trainer.val_before_train": True,
        "trainer.test_freq": cfg.train.steps if cfg.train.steps else -1,
        "trainer.save_freq": cfg.train.checkpoint_every,
        "trainer.max_actor_ckpt_to_keep": cfg.train.keep_checkpoints,
        "trainer.resume_mode": "auto",
        "trainer.default_local_dir": str(paths.checkpoints),
        "trainer.project_name": "agentrl",
        "trainer.experiment_name": paths.run_dir.name,
        "trainer.logger": verl_loggers(cfg),
        "trainer.nnodes": cfg.verl.nnodes,
        "trainer.n_gpus_per_node": cfg.verl.gpus_per_node,
        "trainer.use_v1": True,
        "trainer.v1.trainer_mode": f"agentrl_{cfg.verl.trainer_mode}",
        "+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook": SETUP_HOOK,
        f"+ray_kwargs.ray_init.runtime_env.env_vars.{CONFIG_ENV}": str(paths.agentrl_config),
    }
    if "tensorboard" in ours["trainer.logger"]:  # the run's tensorboard/, as locally (verl's default: under its cwd)
        ours["+ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR"] = str(paths.run_dir / "tensorboard")
    theirs = flatten(cfg.verl.overrides)
    bare = {key.lstrip("+"): key for key in ours}
    for key in theirs:  # the user's value replaces ours, under the user's spelling of the key
        ours.pop(bare.get(key.lstrip("+"), key), None)
    return [f"{key}={hydra_value(value)}" for key, value in {**ours, **theirs}.items()]


def verl_loggers(cfg: Config) -> list[str]:
    """verl's trainer.logger: verl.logger, then the trackers of train.loggers (jsonl is the local trainer's file)."""
    return list(dict.fromkeys([*cfg.verl.logger, *(name for name in cfg.train.loggers if name != "jsonl")]))


def _mini_batch(prompts_per_step: int, minibatch_size: int, n: int) -> int:
    """verl counts PPO mini-batches in prompts; agentrl in trajectories. The largest divisor of the step that fits."""
    target = max(1, min(prompts_per_step, minibatch_size // n))
    return max(d for d in range(1, target + 1) if prompts_per_step % d == 0)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}, "c.d": 2} -> {"a.b": 1, "c.d": 2}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


_BARE = re.compile(r"[A-Za-z0-9_./\-]+")


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar: true/false/null, numbers, [lists], {dicts}, 'quoted' strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _BARE.fullmatch(text) and text.lower() not in ("true", "false", "null") and not _number(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
