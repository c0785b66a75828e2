"""What a practitioner checks first about a batch of trajectories."""

from __future__ import annotations

import math
from collections.abc import Sequence

from agentrl.trajectory import Trajectory


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def rollout_metrics(trajs: Sequence[Trajectory]) -> dict[str, float]:
    steps = [s for t in trajs for s in t.steps]
    first_code = [p for t in trajs if not math.isnan(p := t.first_tool_position("python"))]
    return {
        "reward_mean": _mean([t.reward for t in trajs]),
        "pass_rate": _mean([float(t.correct) for t in trajs]),
        "turns": _mean([len(t.steps) for t in trajs]),
        "tool_calls": _mean([t.num_tool_calls for t in trajs]),
        "code_use_ratio": _mean([float(t.num_tool_calls > 0) for t in trajs]),
        "first_code_pos": _mean(first_code),
        "response_len": _mean([len(t.response_ids) for t in trajs]),
        "generated_tokens": float(sum(t.num_generated for t in trajs)),
        "parse_errors": float(sum(s.error == "parse_error" for s in steps)),
        "tool_errors": float(sum(s.error in ("tool_error", "sandbox_died", "unknown_tool") for s in steps)),
        "timeouts": float(sum(s.error == "timeout" for s in steps)),
        "answered": _mean([float(t.answer is not None) for t in trajs]),
    }
