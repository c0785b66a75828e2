"""Tree-GRPO end to end: the trainer samples trees, trains on the kept leaves with tree-relative advantages."""

from __future__ import annotations

import json

import pytest

from agentrl.errors import AgentRLError
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import train


def test_tree_sampler_trains_with_tree_grpo(make_config, arith_task):
    cfg = make_config("run.name=tree", "rollout.sampler=tree", "algo.advantage=tree_grpo", "train.steps=2")
    run = RunDir.create(cfg, arith_task.name)
    train(cfg, arith_task, run)
    steps = [m for m in run.read_metrics() if m["stage"] == "rl"]
    tree = cfg.rollout.tree
    per_prompt = tree.trees * (1 + tree.expansions * tree.iterations)
    assert [m["leaves"] for m in steps] == [cfg.rollout.prompts_per_step * per_prompt] * 2
    assert all(m["leaves_per_1k_tokens"] > 0 and m["loss"] == m["loss"] for m in steps)
    records = [json.loads(line) for line in run.rollouts.read_text().splitlines()]
    kept = cfg.rollout.prompts_per_step * tree.trees * min(tree.keep, per_prompt // tree.trees)
    assert len(records) == 2 * kept
    assert len({r["tree_id"] for r in records if r["step"] == 1}) == cfg.rollout.prompts_per_step * tree.trees


def test_tree_grpo_without_trees_is_a_config_error(make_config):
    with pytest.raises(AgentRLError, match="needs rollout.sampler=tree"):
        make_config("algo.advantage=tree_grpo")
