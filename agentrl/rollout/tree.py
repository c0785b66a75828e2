"""Tree-search sampling (Tree-GRPO, Ji et al. 2025, arXiv 2509.21240, section 3.1; docs/algorithms.md).

Each tree node is one complete agent step (message, tool call, observation). Per prompt: start M trees with
one full chain each; then L times, in each tree pick N nodes uniformly at random with replacement among the
root and the non-leaf nodes, and expand each into a new full continuation that shares the node's prefix: its
tokens, and its tools' state (sandbox sessions forked at that node; tools that cannot fork replay the prefix).
Finally keep K leaves per tree at random. Each kept leaf is a training trajectory; its `tree_id` feeds the
tree-relative advantage, and steps shared by several leaves are trained once per leaf, so a shared step gets
the summed credit of its descendants.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from agentrl.config import TreeConfig
from agentrl.rollout.chain import AgentLoop, Branch, Policy, closing_branches
from agentrl.tasks import Problem
from agentrl.trajectory import Trajectory


@dataclass
class SamplingCost:
    """What sampling spent: every leaf generated (kept or pruned), the tokens and tool calls actually generated
    (a prefix shared by several leaves counted once). Chains and trees are compared on these."""

    leaves: int
    generated_tokens: int
    tool_calls: int

    @classmethod
    def of(cls, leaves: Sequence[Trajectory]) -> SamplingCost:
        steps = [s for t in leaves for s in t.steps[t.shared_steps :]]
        return cls(len(leaves), sum(len(s.action_ids) for s in steps), sum(s.tool is not None for s in steps))

    def __add__(self, other: SamplingCost) -> SamplingCost:
        return SamplingCost(
            self.leaves + other.leaves,
            self.generated_tokens + other.generated_tokens,
            self.tool_calls + other.tool_calls,
        )

    def as_metrics(self) -> dict[str, float]:
        return {
            "leaves": float(self.leaves),
            "sampled_tokens": float(self.generated_tokens),
            "leaves_per_1k_tokens": 1000.0 * self.leaves / max(self.generated_tokens, 1),
            "leaves_per_tool_call": self.leaves / max(self.tool_calls, 1),
        }


def expansion_nodes(tree: Sequence[Branch]) -> list[tuple[Branch, int]]:
    """The root (depth -1) and every non-leaf node of a tree, each once, as (branch that made it, step index)."""
    nodes: list[tuple[Branch, int]] = [(tree[0], -1)]
    for b in tree:
        nodes.extend((b, j) for j in range(b.traj.shared_steps, len(b.traj.steps) - 1))
    return nodes


def sample_trees(
    loop: AgentLoop,
    problems: Sequence[Problem],
    policy: Policy,
    cfg: TreeConfig,
    seed: int,
    step_tag: str = "",
    counts: Sequence[int] | None = None,
    first: Sequence[int] | None = None,
) -> tuple[list[Trajectory], SamplingCost]:
    """Grow `cfg.trees` trees per problem (or `counts[i]` for problem i, numbered from `first[i]` in its group) and
    return the kept leaves (scored) and the sampling cost."""
    rng = random.Random(seed)
    counts = counts if counts is not None else [cfg.trees] * len(problems)
    first = first if first is not None else [0] * len(problems)
    trees = [
        [loop.start(p, f"{step_tag}{p.id}", tree_id=f"{step_tag}{p.id}/t{m}")]
        for p, n, start in zip(problems, counts, first, strict=True)
        for m in range(start, start + n)
    ]
    with closing_branches(lambda: [b for tree in trees for b in tree]):
        loop.advance([tree[0] for tree in trees], policy, snapshots=cfg.iterations > 0)
        for iteration in range(cfg.iterations):
            grown = []
            for tree in trees:
                for parent, depth in rng.choices(expansion_nodes(tree), k=cfg.expansions):
                    grown.append(loop.branch(parent, depth))
                    tree.append(grown[-1])
            loop.advance(grown, policy, snapshots=iteration + 1 < cfg.iterations)
    cost = SamplingCost.of([b.traj for tree in trees for b in tree])
    kept = [b.traj for tree in trees for b in rng.sample(tree, min(cfg.keep, len(tree)))]
    loop.score(kept, problems)
    return kept, cost


class TreeGrowth:
    """Trees dealt out by a rollout allocation (`agentrl.rollout.allocation.RunGroups`, whose unit is then a
    tree): each call grows `counts[i]` more trees of `problems[i]` in the problem's group, numbered on from the
    trees it already has, and adds what they cost to `cost`."""

    def __init__(self, loop: AgentLoop, policy: Policy, cfg: TreeConfig, seed: int, step_tag: str):
        self.loop, self.policy, self.cfg, self.seed, self.step_tag = loop, policy, cfg, seed, step_tag
        self.cost = SamplingCost(0, 0, 0)
        self._grown: dict[str, int] = {}
        self._calls = 0

    def __call__(self, problems: Sequence[Problem], counts: Sequence[int]) -> list[Trajectory]:
        chosen = [(p, n) for p, n in zip(problems, counts, strict=True) if n > 0]
        if not chosen:
            return []
        problems, counts = [p for p, _ in chosen], [n for _, n in chosen]
        first = [self._grown.get(p.id, 0) for p in problems]
        seed = self.seed + 104_729 * self._calls  # the first call draws as a uniform step always has
        kept, cost = sample_trees(self.loop, problems, self.policy, self.cfg, seed, self.step_tag, counts, first)
        self._calls += 1
        for p, n in chosen:
            self._grown[p.id] = self._grown.get(p.id, 0) + n
        self.cost += cost
        return kept
