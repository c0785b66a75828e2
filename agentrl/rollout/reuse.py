"""Response reuse for all-wrong groups (AR3PO's response reuse; `algo.reuse_responses`).

A group whose rollouts all fail gets a zero GRPO advantage. If an earlier step solved the same prompt, the latest
trajectory that solved it joins the group as one more member: the group now has a spread, its fresh failures get
a negative advantage and the reused success a positive one. An older policy sampled the reused trajectory, so its
old log-probs in the PPO ratio are the ones recorded when it was sampled (`Trajectory.reused_from` names the
step): the ratio is then pi_theta / pi_sampling, and because its advantage is positive the clip caps what it
contributes at (1 + clip_high) x its advantage and drops its gradient once the ratio passes 1 + clip_high.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from agentrl.trajectory import Trajectory, trajectory_from_record

BANK_SIZE = 1024
"""Problems whose latest correct trajectory is kept; the problem stored longest ago goes first."""


@dataclass
class ResponseBank:
    """The latest correct trajectory of each problem an RL step solved (its record, with the step that sampled
    it). Kept in the checkpoint, so a resumed run reuses as an unbroken one."""

    entries: dict[str, dict] = field(default_factory=dict)

    def remember(self, trajs: Sequence[Trajectory], step: int) -> None:
        for t in trajs:
            if t.correct and t.reused_from is None:
                self.entries.pop(t.problem_id, None)  # re-inserted last: the newest entry
                self.entries[t.problem_id] = {"step": step, "trajectory": t.to_record()}
        for problem_id in list(self.entries)[: max(len(self.entries) - BANK_SIZE, 0)]:
            del self.entries[problem_id]

    def fill(self, trajs: Sequence[Trajectory]) -> list[Trajectory]:
        """`trajs` and, after them, one banked success for each of their groups that holds no correct trajectory
        (if its problem was solved before). The reused trajectory takes the group's id; under tree sampling it is
        a tree of its own."""
        groups: dict[str, list[Trajectory]] = {}
        for t in trajs:
            groups.setdefault(t.group_id, []).append(t)
        reused = []
        for group, members in groups.items():
            entry = self.entries.get(members[0].problem_id)
            if entry is None or any(t.correct for t in members):
                continue
            past = trajectory_from_record(entry["trajectory"])
            tree = f"{group}reused" if members[0].tree_id else None
            reused.append(replace(past, group_id=group, tree_id=tree, shared_steps=0, reused_from=entry["step"]))
        return [*trajs, *reused]

    def state(self) -> dict:
        return {"entries": self.entries}

    @classmethod
    def from_state(cls, state: dict | None) -> ResponseBank:
        return cls(**state) if state else cls()
