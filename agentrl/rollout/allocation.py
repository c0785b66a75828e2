"""How many rollouts each prompt of a step gets, under the step's fixed budget of prompts_per_step x group_size.

A prompt whose rollouts all succeed, or all fail, gives GRPO a zero advantage: its tokens teach nothing. Three
allocations (`rollout.allocation`):

- uniform: group_size each.
- knapsack (Knapsack RL, Li et al. 2025): each prompt's rollouts are a knapsack item. Giving n rollouts to a
  prompt of success rate p is worth `P(n, p) * I(p)`: the chance that its group has both a success and a failure,
  `1 - p^n - (1-p)^n`, times the paper's information weight `p (1-p)^2`. The allocation maximises the total worth
  exactly (dynamic programming), each prompt between `min_group` (the exploration floor: a prompt that looks solved
  or hopeless is sampled rarely, never not at all) and `max_group`. p is the prompt's estimate: its successes so
  far (earlier steps, and the step's own first `presample` rollouts) under a Beta prior centred on the last
  step's pass rate.
- adaptive (AR3PO's adaptive rollout): rollouts come in stages of `presample` per prompt; a prompt stops once its
  group has a spread of rewards (or holds `max_group`), and the next stage goes to the rest, until the budget is
  spent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentrl.tasks import Problem
from agentrl.trajectory import Trajectory

PRIOR_STRENGTH = 2.0
"""The Beta prior of a prompt's success rate counts as this many rollouts at the last step's pass rate."""


def nonzero_probability(n: int, p: float) -> float:
    """Chance that n rollouts of success rate p hold both a success and a failure."""
    return 1.0 - p**n - (1.0 - p) ** n


def worth(n: int, p: float) -> float:
    """What n rollouts of a prompt of success rate p are worth (Knapsack RL): P(non-zero gradient) x p (1-p)^2."""
    return nonzero_probability(n, p) * p * (1.0 - p) ** 2


def knapsack(success: Sequence[float], budget: int, low: int, high: int) -> list[int]:
    """Rollouts per prompt, each in [low, high] and summing to `budget` (clamped to [P*low, P*high]), that maximise
    the total `worth`. Exact: dynamic programming over (prompt, rollouts spent); ties go to the earlier prompt."""
    prompts = len(success)
    budget = min(max(budget, prompts * low), prompts * high)
    # best[i][b]: the most worth of prompts i.. with b rollouts left for them; -inf where b cannot be spent exactly
    best = [[-math.inf] * (budget + 1) for _ in range(prompts + 1)]
    best[prompts][0] = 0.0
    choice = [[0] * (budget + 1) for _ in range(prompts)]
    for i in range(prompts - 1, -1, -1):
        values = {n: worth(n, success[i]) for n in range(low, high + 1)}
        for b in range(budget + 1):
            for n in range(high, low - 1, -1):  # most rollouts first among equal worth: a tie keeps the earlier
                if n <= b and best[i + 1][b - n] + values[n] > best[i][b]:
                    best[i][b], choice[i][b] = best[i + 1][b - n] + values[n], n
    counts, left = [], budget
    for i in range(prompts):
        counts.append(choice[i][left])
        left -= counts[-1]
    return counts


@dataclass
class SuccessHistory:
    """Successes and rollouts per problem id over the run, and the last step's pass rate (the prior's centre). Kept
    in the checkpoint, so a resumed run allocates as an unbroken one."""

    counts: dict[str, list[int]] = field(default_factory=dict)
    last_pass_rate: float = 0.5

    def estimate(self, problem_id: str) -> float:
        successes, trials = self.counts.get(problem_id, (0, 0))
        return (successes + PRIOR_STRENGTH * self.last_pass_rate) / (trials + PRIOR_STRENGTH)

    def record(self, trajs: Sequence[Trajectory]) -> None:
        for t in trajs:
            entry = self.counts.setdefault(t.problem_id, [0, 0])
            entry[0] += int(t.correct)
            entry[1] += 1

    def state(self) -> dict:
        return {"counts": self.counts, "last_pass_rate": self.last_pass_rate}

    @classmethod
    def from_state(cls, state: dict | None) -> SuccessHistory:
        return cls(**state) if state else cls()


RunGroups = Callable[[Sequence[Problem], Sequence[int]], list[Trajectory]]
"""Samples `counts[i]` more rollouts of `problems[i]` into its group (AgentLoop.run with the step's tag)."""


@dataclass(frozen=True)
class Allocation:
    mode: str
    budget: int
    presample: int
    low: int
    high: int


def allocate(
    problems: Sequence[Problem], run: RunGroups, plan: Allocation, history: SuccessHistory
) -> list[Trajectory]:
    """The step's rollouts under `plan`; `history` takes the step's pass rate (and, for knapsack, its successes)."""
    if plan.mode == "uniform":
        trajs = run(problems, [plan.budget // len(problems)] * len(problems))
    elif plan.mode == "knapsack":
        trajs = _knapsack(problems, run, plan, history)
    else:
        trajs = _adaptive(problems, run, plan)
    history.last_pass_rate = sum(t.correct for t in trajs) / max(len(trajs), 1)
    return trajs


def _knapsack(
    problems: Sequence[Problem], run: RunGroups, plan: Allocation, history: SuccessHistory
) -> list[Trajectory]:
    first = run(problems, [plan.presample] * len(problems)) if plan.presample else []
    history.record(first)
    low = max(plan.low, plan.presample)
    counts = knapsack([history.estimate(p.id) for p in problems], plan.budget, low, max(plan.high, low))
    rest = run(problems, [n - plan.presample for n in counts])
    history.record(rest)
    return [*first, *rest]


def _adaptive(problems: Sequence[Problem], run: RunGroups, plan: Allocation) -> list[Trajectory]:
    trajs: list[Trajectory] = []
    held = dict.fromkeys((p.id for p in problems), 0)
    left = plan.budget
    while left > 0:
        spread = set(groups_with_spread(trajs))
        mixed = {t.problem_id for t in trajs if t.group_id in spread}
        active = [p for p in problems if held[p.id] < plan.high and p.id not in mixed]
        if not active:
            break
        stage = [min(plan.presample, plan.high - held[p.id]) for p in active]
        if sum(stage) > left:  # the last stage: what is left, in prompt order
            stage = _share(left, [plan.high - held[p.id] for p in active], plan.presample)
        trajs += run(active, stage)
        for p, n in zip(active, stage, strict=True):
            held[p.id] += n
        left -= sum(stage)
    return trajs


def _share(total: int, room: Sequence[int], step: int) -> list[int]:
    """`total` rollouts dealt one at a time round-robin (at most `step` and its room each), earlier prompts first."""
    counts = [0] * len(room)
    while total > 0 and any(c < min(r, step) for c, r in zip(counts, room, strict=True)):
        for i, r in enumerate(room):
            if total and counts[i] < min(r, step):
                counts[i] += 1
                total -= 1
    return counts


def groups_with_spread(trajs: Sequence[Trajectory]) -> list[str]:
    """The group ids, in order of first appearance, whose rewards differ (a non-zero GRPO advantage)."""
    rewards: dict[str, set[float]] = {}
    for t in trajs:
        rewards.setdefault(t.group_id, set()).add(t.reward)
    return [g for g, r in rewards.items() if len(r) > 1]


def spread_share(trajs: Sequence[Trajectory]) -> float:
    """Share of the groups of `trajs` whose rewards differ."""
    return len(groups_with_spread(trajs)) / max(len({t.group_id for t in trajs}), 1)


def rollout_spread_share(trajs: Sequence[Trajectory]) -> float:
    """Share of the sampled trajectories of `trajs` (reused copies not counted) whose group's rewards differ: the
    rollouts that get a non-zero advantage, which Knapsack RL's effective-gradient ratio counts. Unlike
    `spread_share`, a large group weighs more than a small one."""
    spread = set(groups_with_spread(trajs))
    own = [t for t in trajs if t.reused_from is None]
    return sum(t.group_id in spread for t in own) / max(len(own), 1)


def keep_with_spread(trajs: Sequence[Trajectory], groups: int) -> list[Trajectory]:
    """The trajectories of the first `groups` groups with a spread of rewards (DAPO's dynamic sampling)."""
    kept = set(groups_with_spread(trajs)[:groups])
    return [t for t in trajs if t.group_id in kept]
