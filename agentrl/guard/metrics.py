"""Guard figures for metrics.jsonl: how often policies fire, which ones, and what was done about it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from agentrl.trajectory import Trajectory


def guard_metrics(trajs: Sequence[Trajectory]) -> dict[str, float]:
    """Per batch: violations per trajectory and per step, the share of trajectories with any, counts by action,
    checker failures, and `guard/policy/<id>` violations per trajectory for each policy that fired.

    A violation is an event without `error` (a failed checker is counted under guard/errors instead).
    """
    n = max(len(trajs), 1)
    steps = max(sum(len(t.steps) for t in trajs), 1)
    events = [e for t in trajs for e in t.guard_events]
    violations = [e for e in events if e.error is None]
    actions = Counter(e.action for e in violations)
    out = {
        "guard/violations_per_traj": len(violations) / n,
        "guard/violations_per_step": len(violations) / steps,
        "guard/violation_rate": sum(any(e.error is None for e in t.guard_events) for t in trajs) / n,
        "guard/blocked": float(sum(e.action == "block" for e in events)),
        "guard/terminated": float(sum(t.done == "guard" for t in trajs)),
        "guard/penalized": float(actions["penalize"]),
        "guard/logged": float(actions["log"]),
        "guard/errors": float(sum(e.error is not None for e in events)),
        "guard/penalty_mean": sum(t.penalty for t in trajs) / n,
    }
    for policy, count in sorted(Counter(e.policy for e in violations).items()):
        out[f"guard/policy/{policy}"] = count / n
    return out
