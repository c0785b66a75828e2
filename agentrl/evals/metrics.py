"""Per-problem and aggregate metrics of an eval entry, and comparisons between entries.

Confidence intervals are percentile bootstraps over problems (`bootstrap_ci`); a difference between two
entries is bootstrapped on the per-problem differences (paired: both saw the same problems), and counts as
real when its interval excludes zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentrl.evals.passk import bootstrap_ci, pass_at_k, pass_hat_k

TOOL_ERRORS = ("tool_error", "sandbox_died", "unknown_tool")


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _interval(values: Sequence[float]) -> dict[str, float]:
    low, high = bootstrap_ci(values)
    return {"mean": float(np.mean(values)), "low": low, "high": high}


def _count_errors(records: Sequence[dict], names: Sequence[str]) -> int:
    return sum(r["errors"].get(name, 0) for r in records for name in names)


def problem_metrics(records: Sequence[dict], ks: Sequence[int]) -> dict[str, Any]:
    """One problem's n samples: c correct, pass@k and pass^k for each k, and means of the rest."""
    n, c = len(records), sum(bool(r["correct"]) for r in records)
    first_code = [r["first_code_pos"] for r in records if r["first_code_pos"] is not None]
    return {
        "n": n,
        "c": c,
        "pass@k": {k: pass_at_k(n, c, k) for k in ks},
        "pass^k": {k: pass_hat_k(n, c, k) for k in ks},
        "reward": _mean([r["reward"] for r in records]),
        "tool_calls": _mean([r["tool_calls"] for r in records]),
        "turns": _mean([r["turns"] for r in records]),
        "first_code_pos": _mean(first_code),
        "parse_errors": _count_errors(records, ["parse_error"]),
        "tool_errors": _count_errors(records, TOOL_ERRORS),
        "timeouts": _count_errors(records, ["timeout"]),
        "guard_events": sum(len(r["guard"]) for r in records),
        "generated_tokens": sum(r["generated_tokens"] for r in records),
        "seconds": sum(r["seconds"] for r in records),
    }


def aggregate(problems: Sequence[dict[str, Any]], records: Sequence[dict], ks: Sequence[int]) -> dict[str, Any]:
    """Across problems: pass@k, pass^k and mean reward with bootstrap intervals; tool use, errors, guard
    events, tokens and time over all trajectories."""
    trajectories = len(records)
    first_code = [r["first_code_pos"] for r in records if r["first_code_pos"] is not None]
    guard: dict[str, Counter] = {}
    for r in records:
        for event in r["guard"]:
            guard.setdefault(event["policy"], Counter())[event["action"]] += 1
    seconds = sum(r["seconds"] for r in records)
    generated = sum(r["generated_tokens"] for r in records)
    errors = Counter()
    for r in records:
        errors.update(r["errors"])
    return {
        "problems": len(problems),
        "trajectories": trajectories,
        "pass@k": {k: _interval([p["pass@k"][k] for p in problems]) for k in ks},
        "pass^k": {k: _interval([p["pass^k"][k] for p in problems]) for k in ks},
        "reward": _interval([p["reward"] for p in problems]),
        "solved_any": sum(p["c"] > 0 for p in problems) / len(problems),
        "answered": sum(r["answer"] is not None for r in records) / trajectories,
        "tool_calls": _mean([r["tool_calls"] for r in records]),
        "tool_calls_histogram": dict(sorted(Counter(r["tool_calls"] for r in records).items())),
        "code_use": sum(r["first_code_pos"] is not None for r in records) / trajectories,
        "turns": _mean([r["turns"] for r in records]),
        "turns_histogram": dict(sorted(Counter(r["turns"] for r in records).items())),
        "first_code_pos": _mean(first_code),
        "first_code_pos_median": float(np.median(first_code)) if first_code else None,
        "first_code_pos_histogram": dict(sorted(Counter(int(p) for p in first_code).items())),
        "parse_errors": _count_errors(records, ["parse_error"]),
        "tool_errors": _count_errors(records, TOOL_ERRORS),
        "timeouts": _count_errors(records, ["timeout"]),
        "errors": dict(errors.most_common()),
        "guard_violations": sum(sum(c.values()) for c in guard.values()),
        "guard_by_policy": {policy: dict(c) for policy, c in sorted(guard.items())},
        "done": dict(Counter(r["done"] for r in records).most_common()),
        "generated_tokens": generated,
        "generated_tokens_per_trajectory": generated / trajectories,
        "response_tokens_per_trajectory": sum(r["response_tokens"] for r in records) / trajectories,
        "tool_seconds": sum(r["tool_seconds"] for r in records),
        "wall_seconds": seconds,
        "tokens_per_second": generated / seconds if seconds > 0 else None,
    }


@dataclass(frozen=True)
class Pair:
    """Two entries of one task that differ in one thing (the model, or tools on/off); `b - a` is reported."""

    a: int
    b: int
    factor: str


def compare(a: dict[str, Any], b: dict[str, Any], ks: Sequence[int], factor: str) -> list[dict[str, Any]]:
    """`b - a` for pass@k (each k), pass^k (each k) and mean reward, paired over the problems both saw.

    `outside_ci`: the bootstrap interval of the difference excludes 0. `outside_baseline_ci`: b's mean lies
    outside a's own interval (the cruder check a reader does by eye).
    """
    by_id_a = {p["uid"]: p for p in a["problems"]}
    shared = [(by_id_a[p["uid"]], p) for p in b["problems"] if p["uid"] in by_id_a]
    metrics = [(f"pass@{k}", "pass@k", k) for k in ks] + [(f"pass^{k}", "pass^k", k) for k in ks]
    rows = []
    for name, field, k in [*metrics, ("reward", "reward", None)]:
        diffs = np.array([_pick(pb, field, k) - _pick(pa, field, k) for pa, pb in shared])
        low, high = bootstrap_ci(diffs)
        base, other = _pick(a["aggregate"], field, k), _pick(b["aggregate"], field, k)
        rows.append(
            {
                "a": a["label"],
                "b": b["label"],
                "factor": factor,
                "metric": name,
                "a_mean": base["mean"],
                "b_mean": other["mean"],
                "diff": float(diffs.mean()),
                "low": low,
                "high": high,
                "outside_ci": bool(low > 0 or high < 0),
                "outside_baseline_ci": bool(other["mean"] < base["low"] or other["mean"] > base["high"]),
                "problems": len(shared),
            }
        )
    return rows


def _pick(metrics: dict[str, Any], field: str, k: int | None) -> Any:
    return metrics[field] if k is None else metrics[field][k]


def comparison_pairs(entries: Sequence[dict[str, Any]]) -> list[Pair]:
    """Each model against the first model with the same tools setting; each model's tools-off against tools-on."""
    pairs = []
    for i, e in enumerate(entries):
        for j, other in enumerate(entries):
            same_tools = e["tools"] == other["tools"]
            if same_tools and e["model_index"] == 0 and other["model_index"] != 0:
                pairs.append(Pair(i, j, "model"))
            if e["model_index"] == other["model_index"] and e["tools"] and not other["tools"]:
                pairs.append(Pair(i, j, "tools"))
    return pairs
