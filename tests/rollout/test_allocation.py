"""Rollout allocation: the knapsack is solved exactly (against brute force) within the budget and the floor,
adaptive rollout stops a prompt once its rewards differ, and DAPO's filter keeps groups with a spread."""

from __future__ import annotations

import itertools
import random

import pytest

from agentrl.rollout.allocation import (
    Allocation,
    SuccessHistory,
    allocate,
    keep_with_spread,
    knapsack,
    nonzero_probability,
    rollout_spread_share,
    spread_share,
    worth,
)
from agentrl.tasks import Problem
from agentrl.trajectory import Trajectory


def brute_force(success: list[float], budget: int, low: int, high: int) -> float:
    budget = min(max(budget, len(success) * low), len(success) * high)
    return max(
        sum(worth(n, p) for n, p in zip(counts, success, strict=True))
        for counts in itertools.product(range(low, high + 1), repeat=len(success))
        if sum(counts) == budget
    )


@pytest.mark.parametrize("seed", range(40))
def test_knapsack_is_the_brute_force_optimum_within_budget_and_bounds(seed):
    rng = random.Random(seed)
    prompts, low = rng.randint(1, 4), rng.randint(1, 3)
    high = low + rng.randint(0, 4)
    success = [rng.choice([0.0, 1.0, rng.random()]) for _ in range(prompts)]
    budget = rng.randint(0, prompts * (high + 1))
    counts = knapsack(success, budget, low, high)
    assert all(low <= n <= high for n in counts)
    assert sum(counts) == min(max(budget, prompts * low), prompts * high)
    best = brute_force(success, budget, low, high)
    assert sum(worth(n, p) for n, p in zip(counts, success, strict=True)) == pytest.approx(best)
    assert knapsack(success, budget, low, high) == counts  # deterministic


def test_solved_and_hopeless_prompts_get_the_floor_and_the_uncertain_one_the_rest():
    assert knapsack([1.0, 0.4, 0.0], budget=12, low=2, high=8) == [2, 8, 2]
    assert nonzero_probability(2, 0.5) == pytest.approx(0.5) and worth(5, 0.0) == 0.0 == worth(5, 1.0)


def test_success_estimates_shrink_to_the_last_pass_rate_and_survive_the_checkpoint():
    history = SuccessHistory(last_pass_rate=0.25)
    assert history.estimate("unseen") == 0.25
    history.record([_traj("a", "g", 1.0), _traj("a", "g", 1.0)])
    assert history.estimate("a") == pytest.approx((2 + 2 * 0.25) / 4)
    assert SuccessHistory.from_state(history.state()) == history


def _traj(problem_id: str, group_id: str, reward: float) -> Trajectory:
    return Trajectory(problem_id, group_id, [1], reward=reward, score=reward)


def _problems(n: int) -> list[Problem]:
    return [Problem(f"p{i}", f"q{i}", "0", {}) for i in range(n)]


class FakeSampler:
    """Rewards per problem from a fixed sequence (cycled): stands in for AgentLoop.run."""

    def __init__(self, outcomes: dict[str, list[float]]):
        self.outcomes, self.drawn, self.calls = outcomes, {k: 0 for k in outcomes}, []

    def __call__(self, problems, counts):
        self.calls.append([(p.id, n) for p, n in zip(problems, counts, strict=True)])
        out = []
        for p, n in zip(problems, counts, strict=True):
            for _ in range(n):
                seq = self.outcomes[p.id]
                out.append(_traj(p.id, p.id, seq[self.drawn[p.id] % len(seq)]))
                self.drawn[p.id] += 1
        return out


def test_adaptive_stops_a_prompt_once_its_rewards_differ_and_keeps_to_the_budget():
    problems = _problems(3)
    sampler = FakeSampler({"p0": [1.0, 0.0], "p1": [0.0], "p2": [0.0, 0.0, 0.0, 1.0]})
    plan = Allocation("adaptive", budget=12, presample=2, low=2, high=6)
    trajs = allocate(problems, sampler, plan, SuccessHistory())
    held = {p.id: sum(t.problem_id == p.id for t in trajs) for p in problems}
    assert held["p0"] == 2  # mixed after its first stage: done
    assert held["p2"] == 4  # its 4th rollout succeeds: done
    assert held["p1"] == 6  # never mixed: up to max_group
    assert len(trajs) <= plan.budget and sampler.calls[0] == [("p0", 2), ("p1", 2), ("p2", 2)]


def test_adaptive_last_stage_deals_what_is_left_in_prompt_order():
    sampler = FakeSampler({"p0": [0.0], "p1": [0.0], "p2": [0.0]})
    trajs = allocate(_problems(3), sampler, Allocation("adaptive", 7, 2, 2, 6), SuccessHistory())
    assert len(trajs) == 7 and sampler.calls[-1] == [("p0", 1), ("p1", 0), ("p2", 0)]


def test_knapsack_allocation_presamples_then_allocates_by_the_estimates():
    problems = _problems(3)
    sampler = FakeSampler({"p0": [1.0], "p1": [1.0, 0.0], "p2": [0.0]})
    history = SuccessHistory()  # prior centred on 0.5, worth 2 rollouts
    trajs = allocate(problems, sampler, Allocation("knapsack", budget=12, presample=2, low=2, high=8), history)
    held = [sum(t.problem_id == p.id for t in trajs) for p in problems]
    # presampled 2/2, 1/2 and 0/2 successes: estimates 0.75, 0.5, 0.25; p (1-p)^2 favours the harder prompts
    assert held == knapsack([0.75, 0.5, 0.25], 12, 2, 8) == [3, 4, 5]
    assert sampler.calls[0] == [("p0", 2), ("p1", 2), ("p2", 2)]
    assert sampler.calls[1] == [("p0", 1), ("p1", 2), ("p2", 3)]
    assert history.counts == {"p0": [3, 3], "p1": [2, 4], "p2": [0, 5]}
    assert history.last_pass_rate == pytest.approx(5 / 12)


def test_uniform_allocation_is_group_size_each():
    sampler = FakeSampler({"p0": [1.0], "p1": [0.0]})
    trajs = allocate(_problems(2), sampler, Allocation("uniform", 8, 2, 2, 8), SuccessHistory())
    assert sampler.calls == [[("p0", 4), ("p1", 4)]] and len(trajs) == 8


def test_the_filter_keeps_the_first_groups_with_a_spread():
    trajs = [_traj("a", "a", 1.0), _traj("a", "a", 1.0), _traj("b", "b", 0.0), _traj("b", "b", 1.0)]
    trajs += [_traj("c", "c", 0.5), _traj("c", "c", 0.0), _traj("d", "d", 1.0), _traj("d", "d", 0.0)]
    assert [t.group_id for t in keep_with_spread(trajs, 2)] == ["b", "b", "c", "c"]
    assert spread_share(trajs) == 0.75


def test_the_rollout_share_weighs_groups_by_size_and_leaves_reused_copies_out():
    trajs = [_traj("a", "a", 1.0) for _ in range(6)] + [_traj("b", "b", 0.0), _traj("b", "b", 1.0)]
    assert (spread_share(trajs), rollout_spread_share(trajs)) == (0.5, 0.25)  # 2 of 8 rollouts, 1 of 2 groups
    wrong = [_traj("c", "c", 0.0), _traj("c", "c", 0.0)]
    reused = Trajectory("c", "c", [1], reward=1.0, score=1.0, reused_from=3)  # gives the all-wrong group a spread
    assert rollout_spread_share(wrong + [reused]) == 1.0 and rollout_spread_share(wrong) == 0.0
