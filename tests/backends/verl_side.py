"""The verl side of the backend tests: run in the verl interpreter by tests/backends/test_verl_side.py.

    python verl_side.py SPEC.json OUT.pt       (exit 77: this verl environment cannot run the checks)

For each case in SPEC: compose the config agentrl generated with verl's own Hydra config and validate it as
`verl.trainer.main_ppo` does; run verl's AgentLoopWorker (agentrl's agent loop, a scripted server manager,
verl's reward loop calling agentrl's reward function) on rows of the dataset agentrl wrote; then compute
advantages with verl's `compute_advantage` for each named estimator. Everything is saved for the test to check.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

try:
    import numpy as np
    import torch
    import transfer_queue
    import verl
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.protocol import DataProto
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
    from verl.utils.config import omega_conf_to_dataclass, validate_config
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict
    from verl.workers.rollout.replica import TokenOutput
except ImportError as exc:  # verl without the [verl] extra's companions (TransferQueue, uvicorn, cachetools...)
    print(f"verl environment incomplete: {exc!r}")
    sys.exit(77)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agentrl.backends import verl_algos  # noqa: E402
from agentrl.backends.verl import AgentrlAgentLoop  # noqa: E402
from agentrl.backends.verl_config import CONFIG_ENV  # noqa: E402
from agentrl.backends.verl_rows import problem_from_info, rows_from_non_tensor_batch  # noqa: E402
from agentrl.errors import AgentRLError  # noqa: E402
from tests.backends.scripted import ScriptedServer  # noqa: E402


def compose_and_validate(overrides: list[str]):
    """What `python -m verl.trainer.main_ppo OVERRIDES` does before it starts Ray, plus the typed configs."""
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    OmegaConf.resolve(config)
    typed = {
        "actor": omega_conf_to_dataclass(config.actor_rollout_ref.actor),
        "rollout": omega_conf_to_dataclass(config.actor_rollout_ref.rollout),
        "model": omega_conf_to_dataclass(config.actor_rollout_ref.model),
        "algorithm": omega_conf_to_dataclass(config.algorithm),
    }
    return config, typed


class LocalRewardHandle:
    """A reward-loop worker in this process, with the `.compute_score.remote(data)` face of its Ray actor."""

    def __init__(self, worker: RewardLoopWorker):
        self.compute_score = SimpleNamespace(remote=worker.compute_score)


def unpadded(out: DataProto, i: int) -> dict:
    prompt_width = out.batch["prompts"].shape[1]
    mask = out.batch["attention_mask"][i]
    prompt = out.batch["prompts"][i][mask[:prompt_width].bool()].tolist()
    length = int(mask[prompt_width:].sum())
    nt = out.non_tensor_batch
    return {
        "prompt_ids": prompt,
        "response_ids": out.batch["responses"][i][:length].tolist(),
        "response_mask": out.batch["response_mask"][i][:length].tolist(),
        "response_logprobs": out.batch["rollout_log_probs"][i][:length].tolist(),
        "reward": float(out.batch["rm_scores"][i].sum()),
        "acc": float(nt["acc"][i]),
        "penalty": float(nt["penalty"][i]),
        "num_turns": int(nt["__num_turns__"][i]),
        "structure": nt["agentrl"][i],
    }


async def run_case(case: dict) -> dict:
    config, typed = compose_and_validate(case["overrides"])
    tokenizer = typed["model"].tokenizer
    dataset = RLHFDataset(config.data.train_files, tokenizer, config.data)
    rows = [dataset[i] for i in range(case["prompts"])]
    val_row = RLHFDataset(config.data.val_files, tokenizer, config.data)[0]
    problems = [problem_from_info(r["extra_info"]) for r in [*rows, val_row]]
    server = ScriptedServer(tokenizer, problems, TokenOutput, case.get("start", 0), case.get("native", False))
    reward = LocalRewardHandle(RewardLoopWorker(config))
    worker = AgentLoopWorker(config, server, reward_loop_worker_handles=[reward])
    batch = DataProto.from_single_dict(collate_fn(rows))
    batch.non_tensor_batch["uid"] = np.array([f"uid{i}" for i in range(len(batch))], dtype=object)
    n = config.actor_rollout_ref.rollout.n
    batch = batch.repeat(repeat_times=n, interleave=True)
    out = await worker.generate_sequences(batch)

    uids = list(batch.non_tensor_batch["uid"])
    rows_for_estimators = rows_from_non_tensor_batch(out.non_tensor_batch)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": out.batch["rm_scores"], "response_mask": out.batch["response_mask"]},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )
    advantages = {}
    for estimator in case["estimators"]:
        os.environ[CONFIG_ENV] = estimator["config"]
        with verl_algos.batch_rows(rows_for_estimators):
            result = compute_advantage(data, adv_estimator=estimator["name"], config=typed["algorithm"])
        advantages[estimator["label"]] = result.batch["advantages"].clone()
    return {
        "uids": uids,
        "val_tree_ids": await validation_tree_ids(worker, val_row),
        "rows": [unpadded(out, i) for i in range(len(out))],
        "advantages": advantages,
        "requests": server.requests,
        "checks": checks(config, typed, data, rows_for_estimators, case),
    }


async def validation_tree_ids(worker: AgentLoopWorker, row: dict) -> list:
    """Two samples of a validation prompt, as verl's validation asks for them: their tree ids."""
    batch = DataProto.from_single_dict(collate_fn([row]))
    batch.non_tensor_batch["uid"] = np.array(["val0"], dtype=object)
    batch = batch.repeat(repeat_times=2, interleave=True)
    batch.meta_info["validate"] = True
    out = await worker.generate_sequences(batch)
    return [s["tree_id"] for s in out.non_tensor_batch["agentrl"]]


def checks(config, typed, data: DataProto, rows: list[dict], case: dict) -> dict:
    """Registries, composed values, the estimator's error without rows, and the TransferQueue trainer hook."""
    estimator = case["estimators"][0]["name"]
    os.environ[CONFIG_ENV] = case["estimators"][0]["config"]
    try:
        compute_advantage(data, adv_estimator=estimator, config=typed["algorithm"])
        no_rows = ""
    except AgentRLError as exc:
        no_rows = str(exc)
    # the trainer mode: extra_fields as verl's TransferQueue worker stores them, read back by the mixin
    stored = list_of_dict_to_tensordict([{"extra_fields": row} for row in rows])
    mode = TRAINER_REGISTRY[config.trainer.v1.trainer_mode]

    class Base:
        def _compute_advantage(self, batch, metrics):
            return compute_advantage(data, adv_estimator=estimator, config=typed["algorithm"]).batch["advantages"]

    hooked = type("Hooked", (verl_algos.RowsForEstimators, Base), {})
    seen = {}

    def kv_batch_get(keys, partition_id, select_fields):
        seen.update(keys=list(keys), partition_id=partition_id, fields=list(select_fields))
        return stored

    real_get = transfer_queue.kv_batch_get
    transfer_queue.kv_batch_get = kv_batch_get
    try:
        via_mixin = hooked()._compute_advantage(SimpleNamespace(keys=["k"] * len(rows), partition_id="train"), {})
    finally:
        transfer_queue.kv_batch_get = real_get
    rollout = config.actor_rollout_ref.rollout
    return {
        "estimators": sorted(k for k in core_algos.ADV_ESTIMATOR_REGISTRY if k.startswith("agentrl_")),
        "trainer_modes": sorted(k for k in TRAINER_REGISTRY if k.startswith("agentrl_")),
        "mode_is_a_verl_trainer": issubclass(mode, verl_algos.RowsForEstimators)
        and mode.__mro__[2] is TRAINER_REGISTRY[config.trainer.v1.trainer_mode.removeprefix("agentrl_")],
        "agent_loop_entry": OmegaConf.to_container(OmegaConf.load(rollout.agent.agent_loop_config_path)),
        "agent_loop_class": f"{AgentrlAgentLoop.__module__}.{AgentrlAgentLoop.__qualname__}",
        "adv_estimator": config.algorithm.adv_estimator,
        "reward_path": config.reward.custom_reward_function.path,
        "rollout_n": typed["rollout"].n,
        "prompt_length": typed["rollout"].prompt_length,
        "response_length": typed["rollout"].response_length,
        "setup_hook": config.ray_kwargs.ray_init.runtime_env.worker_process_setup_hook,
        "no_rows_error": no_rows,
        "mixin_request": seen,
        "mixin_advantages": via_mixin.clone(),
    }


async def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    results = {case["name"]: await run_case(case) for case in spec["cases"]}
    torch.save(results, out_path)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
