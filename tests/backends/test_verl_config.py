"""agentrl's config as verl's Hydra overrides, and `agentrl train --backend verl --dry-run`.

That verl itself accepts the generated config is checked in test_verl_side.py (in the verl interpreter).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrl.backends.verl_config import Lengths, VerlPaths, flatten, hydra_overrides, hydra_value
from agentrl.cli import app
from agentrl.config import build_config
from agentrl.errors import AgentRLError

PATHS = VerlPaths(Path("/runs/x"), Path("/models/m"))
SMALL = ["train.steps=2", "rollout.prompts_per_step=2", "eval.problems=2"]


def overrides(*settings: str) -> dict[str, str]:
    cfg = build_config([], list(settings))
    items = [o.split("=", 1) for o in hydra_overrides(cfg, PATHS, Lengths(40, 472), train_problems=100)]
    keys = [k for k, _ in items]
    assert len(keys) == len(set(k.lstrip("+") for k in keys)), "every key once"
    return dict(items)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (3, "3"),
        (5e-4, "0.0005"),
        ("/runs/x/train.jsonl", "/runs/x/train.jsonl"),
        ("token-mean", "token-mean"),
        ("pkg://a.b", "'pkg://a.b'"),
        ("true", "'true'"),
        ("123", "'123'"),
        ("it's", "'it\\'s'"),
        (["console", "wandb"], "[console,wandb]"),
        ({"a": 1, "b": [True]}, "{a:1,b:[true]}"),
    ],
)
def test_values_are_written_in_hydras_override_grammar(value, text):
    assert hydra_value(value) == text


def test_nested_and_dotted_overrides_flatten_alike():
    assert flatten({"trainer": {"save_freq": 5}, "data.seed": 1, "+x": {"y": None}}) == {
        "trainer.save_freq": 5,
        "data.seed": 1,
        "+x.y": None,
    }


def test_agentrl_settings_reach_the_verl_keys_that_mean_the_same():
    o = overrides("train.lr=0.001", "rollout.group_size=5", "algo.clip_high=0.3", "algo.kl_coef=0.01", "train.steps=7")
    assert o["actor_rollout_ref.actor.optim.lr"] == "0.001"
    assert o["actor_rollout_ref.rollout.n"] == "5"
    assert o["actor_rollout_ref.actor.clip_ratio_high"] == "0.3"
    assert (o["actor_rollout_ref.actor.use_kl_loss"], o["actor_rollout_ref.actor.kl_loss_coef"]) == ("true", "0.01")
    assert o["trainer.total_training_steps"] == "7" and o["trainer.test_freq"] == "7"
    assert o["algorithm.adv_estimator"] == "agentrl_grpo"
    assert (o["data.max_prompt_length"], o["data.max_response_length"]) == ("40", "472")
    assert o["actor_rollout_ref.rollout.agent.agent_loop_config_path"] == "/runs/x/verl/agent_loops.yaml"


def test_tree_sampling_asks_verl_for_every_kept_leaf():
    tree = ["rollout.sampler=tree", "algo.advantage=tree_grpo", "rollout.tree.trees=3", "rollout.tree.keep=2"]
    o = overrides(*tree)
    assert (o["actor_rollout_ref.rollout.n"], o["algorithm.adv_estimator"]) == ("6", "agentrl_tree_grpo")
    with pytest.raises(AgentRLError, match="keep=5 but a tree grows only 3 leaves"):
        overrides(*tree, "rollout.tree.keep=5")


def test_a_token_or_seconds_budget_is_refused_on_verl():
    for budget in ("train.max_sampled_tokens=1000", "train.max_rl_seconds=60"):
        with pytest.raises(AgentRLError, match="verl runs a fixed train.steps"):
            overrides(budget)


def test_rollout_allocation_the_zero_variance_filter_and_response_reuse_are_refused_on_verl():
    refused = ("rollout.allocation=knapsack", "rollout.allocation=adaptive", "algo.filter_zero_variance=true")
    for setting in (*refused, "algo.reuse_responses=true"):
        with pytest.raises(AgentRLError, match="local backend only"):
            overrides(setting)


def test_ppo_mini_batches_count_prompts_in_verl():
    # agentrl: 32 trajectories per update; verl: prompts, here 32 / 8 samples = 4 -> the largest divisor of 6
    o = overrides("rollout.prompts_per_step=6", "rollout.group_size=8", "algo.minibatch_size=32")
    assert o["actor_rollout_ref.actor.ppo_mini_batch_size"] == "3"


def test_train_loggers_join_verls_trainer_logger():
    tb_dir = "+ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR"
    default = overrides()
    assert default["trainer.logger"] == "[console]" and tb_dir not in default
    o = overrides("train.loggers=[jsonl,tensorboard,wandb]")
    assert o["trainer.logger"] == "[console,tensorboard,wandb]"
    assert o[tb_dir] == "/runs/x/tensorboard"  # where the local trainer writes its event files too
    assert overrides("verl.logger=[wandb]", "train.loggers=[wandb]")["trainer.logger"] == "[wandb]"


def test_verl_overrides_win_under_the_users_spelling():
    o = overrides(
        "verl.overrides.trainer.save_freq=9",
        "verl.overrides.data.seed=4",
        "verl.overrides.+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=my.hook",
    )
    assert o["trainer.save_freq"] == "9" and o["data.seed"] == "4"
    assert o["+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook"] == "my.hook"


def test_dry_run_prints_the_plan_and_the_launch_command_and_writes_nothing(tmp_path):
    sets = [*SMALL, f"run.runs_dir={tmp_path}", "run.name=r1", "verl.python=/opt/verl/bin/python"]
    args = ["train", "arith-python", "--backend", "verl", "--dry-run", *(a for s in sets for a in ("--set", s))]
    result = CliRunner().invoke(app, [*args, "--set", "verl.overrides.trainer.save_freq=3"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("# agentrl -> verl: arith-python, 2 steps x 2 prompts x 8 samples, advantage grpo")
    assert "built at launch" in out and f"# run directory: {tmp_path / 'r1'}" in out
    assert f"cd {tmp_path / 'r1' / 'verl'} && AGENTRL_CONFIG=" in out
    assert "/opt/verl/bin/python -m verl.trainer.main_ppo \\" in out
    lines = [line.strip().rstrip(" \\") for line in out.splitlines()]
    assert "algorithm.adv_estimator=agentrl_grpo" in lines and "trainer.save_freq=3" in lines
    assert f"actor_rollout_ref.model.path={tmp_path / 'r1' / 'sft_model'}" in lines
    assert list(tmp_path.iterdir()) == []


def test_launch_without_verl_says_how_to_install_it(tmp_path):
    sets = [*SMALL, f"run.runs_dir={tmp_path}", f"verl.python={tmp_path / 'no-python'}"]
    result = CliRunner().invoke(
        app, ["train", "arith-python", "--backend", "verl", *(a for s in sets for a in ("--set", s))]
    )
    assert isinstance(result.exception, AgentRLError)
    assert "verl is not installed" in str(result.exception) and "pip install -e '.[verl]'" in str(result.exception)
