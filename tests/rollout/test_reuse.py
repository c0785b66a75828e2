"""Response reuse: an all-wrong group gains its problem's latest earlier success, with the step that sampled it; the
bank keeps only fresh successes, evicts the oldest past its size and survives the checkpoint as JSON. A train split
too small for a step's distinct prompts is a clear error."""

from __future__ import annotations

import json

import pytest
import torch

import agentrl.rollout.reuse as reuse
from agentrl.algos import tree_grpo_advantages
from agentrl.config import build_config
from agentrl.errors import AgentRLError
from agentrl.rollout.allocation import SuccessHistory
from agentrl.rollout.reuse import ResponseBank
from agentrl.tasks import Problem
from agentrl.train.trainer import sample_step, train_pool
from agentrl.trajectory import Step, Trajectory


def _traj(problem_id: str, group_id: str, score: float, tree_id: str | None = None, text: str = "") -> Trajectory:
    step = Step([5, 6], [-0.5, -0.25], text, "answer")
    return Trajectory(problem_id, group_id, [1, 2], [step], score=score, reward=score, tree_id=tree_id)


def test_an_all_wrong_group_gains_the_latest_earlier_success_of_its_problem():
    bank = ResponseBank()
    bank.remember([_traj("a", "1/a", 1.0, text="old"), _traj("b", "1/b", 0.0)], step=1)
    bank.remember([_traj("a", "2/a", 1.0, text="new")], step=2)
    now = [_traj("a", "3/a", 0.0), _traj("a", "3/a", 0.0), _traj("b", "3/b", 0.0), _traj("c", "3/c", 0.0)]
    now += [_traj("c", "3/c", 1.0)]
    filled = bank.fill(now)
    assert filled[: len(now)] == now and len(filled) == len(now) + 1  # b was never solved, c has its success
    added = filled[-1]
    assert (added.group_id, added.reused_from, added.steps[0].action_text) == ("3/a", 2, "new")
    assert added.steps[0].action_logprobs == [-0.5, -0.25] and added.tree_id is None and added.correct


def test_reused_trajectories_are_not_banked_again_and_the_oldest_problem_goes_first(monkeypatch):
    monkeypatch.setattr(reuse, "BANK_SIZE", 2)
    bank = ResponseBank()
    bank.remember([_traj("a", "1/a", 1.0), _traj("b", "1/b", 1.0)], step=1)
    (added,) = bank.fill([_traj("a", "2/a", 0.0)])[1:]
    bank.remember([added], step=2)
    assert bank.entries["a"]["step"] == 1  # the reused copy did not replace the original
    bank.remember([_traj("a", "3/a", 1.0), _traj("c", "3/c", 1.0)], step=3)
    assert list(bank.entries) == ["a", "c"]  # b, stored longest ago, went first


def test_the_bank_survives_the_checkpoint_as_json():
    bank = ResponseBank()
    bank.remember([_traj("a", "1/a", 1.0, text="x")], step=4)
    restored = ResponseBank.from_state(json.loads(json.dumps(bank.state())))
    assert restored == bank
    group = [_traj("a", "5/a", 0.0)]
    assert restored.fill(group) == bank.fill(group)


def test_under_tree_sampling_the_reused_success_is_a_tree_of_its_own():
    bank = ResponseBank()
    bank.remember([_traj("a", "1/a", 1.0, tree_id="1/a#0")], step=1)
    trees = [_traj("a", "2/a", 0.0, tree_id=f"2/a#{i // 2}") for i in range(4)]
    filled = bank.fill(trees)
    assert filled[-1].tree_id == "2/a" + "reused" and filled[-1].tree_id not in {t.tree_id for t in trees}
    adv = tree_grpo_advantages(
        torch.tensor([t.reward for t in filled]), [t.group_id for t in filled], [t.tree_id for t in filled]
    )
    assert adv[-1] > 0 and bool((adv[:-1] < 0).all())


class FakeLoop:
    """Stands in for AgentLoop.run: every rollout of a problem scores what `outcomes` gives it at that step."""

    def __init__(self, outcomes: dict[int, dict[str, float]]):
        self.outcomes, self.step = outcomes, 0

    def run(self, problems, counts, policy, tag):
        return [
            _traj(p.id, f"{tag}{p.id}", self.outcomes[self.step][p.id])
            for p, k in zip(problems, counts, strict=True)
            for _ in range(k)
        ]


@pytest.mark.parametrize("filtered", [False, True])
def test_a_step_reuses_an_earlier_success_for_an_all_wrong_group(filtered):
    pool = [Problem("p0", "q0", "0", {}), Problem("p1", "q1", "0", {})]
    cfg = build_config(
        [{"task": "arith-python"}],
        ["rollout.prompts_per_step=2", "rollout.group_size=2", f"algo.filter_zero_variance={filtered}"]
        + ["algo.max_refills=0"],
    )
    loop = FakeLoop({1: {"p0": 1.0, "p1": 0.0}, 2: {"p0": 0.0, "p1": 0.0}})
    bank, history = ResponseBank(), SuccessHistory()
    loop.step = 1
    first, _, metrics = sample_step(loop, pool, None, cfg, 1, history, bank)
    assert metrics["reused"] == 0 and metrics["groups_with_spread"] == 0
    loop.step = 2
    second, cost, metrics = sample_step(loop, pool, None, cfg, 2, history, bank)
    reused = [t for t in second if t.reused_from is not None]
    assert [(t.problem_id, t.group_id, t.reused_from) for t in reused] == [("p0", "2/p0", 1)]
    assert metrics["reused"] == 1 and metrics["groups_with_spread"] == 0.5  # p0 has a spread now, p1 none
    assert (cost.leaves, cost.generated_tokens) == (4, 8)  # 2 prompts x 2 rollouts x 2 tokens: reuse is free
    if filtered:  # the filter keeps the group that reuse gave a spread, and drops the other
        assert {t.group_id for t in second} == {"2/p0"}


class SmallTask:
    name = "small"

    def problems(self, split, n, seed=0):
        return [Problem(f"{split}-{i}", "q", "0", {}) for i in range(min(n, 3))]


def test_a_train_split_smaller_than_a_steps_prompts_is_a_clear_error():
    cfg = build_config([{"task": "arith-python"}], ["rollout.prompts_per_step=3", "train.problems=10"])
    assert [p.id for p in train_pool(SmallTask(), cfg)] == ["train-0", "train-1", "train-2"]
    cfg = build_config([{"task": "arith-python"}], ["rollout.prompts_per_step=4"])
    with pytest.raises(AgentRLError, match="train split gave 3 problems, fewer than rollout.prompts_per_step"):
        train_pool(SmallTask(), cfg)
