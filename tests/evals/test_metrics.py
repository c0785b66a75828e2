"""Per-problem and aggregate metrics from hand-built sample records; comparisons and which pairs are compared."""

from __future__ import annotations

import pytest

from agentrl.evals import pass_at_k, pass_hat_k
from agentrl.evals.metrics import aggregate, compare, comparison_pairs, problem_metrics


def record(correct: bool, tool_calls: int = 1, errors: dict | None = None, guard: list | None = None, **fields):
    return {
        "correct": correct,
        "score": float(correct),
        "reward": float(correct),
        "answer": "1" if correct else None,
        "done": "answer" if correct else "no_answer",
        "turns": tool_calls + 1,
        "tool_calls": tool_calls,
        "first_code_pos": 10.0 if tool_calls else None,
        "errors": errors or {},
        "guard": guard or [],
        "generated_tokens": 20,
        "response_tokens": 30,
        "tool_seconds": 0.01,
        "seconds": 0.5,
        **fields,
    }


def entry(label: str, outcomes: list[list[bool]], model_index: int = 0, tools: bool = True) -> dict:
    problems = [{"uid": f"p{i}", **problem_metrics([record(c) for c in o], [1, 2])} for i, o in enumerate(outcomes)]
    records = [record(c) for o in outcomes for c in o]
    return {
        "label": label,
        "model_index": model_index,
        "tools": tools,
        "problems": problems,
        "aggregate": aggregate(problems, records, [1, 2]),
    }


def test_problem_metrics_use_the_estimators():
    records = [record(True), record(False, tool_calls=0), record(False, errors={"parse_error": 2}), record(True)]
    m = problem_metrics(records, [1, 3])
    assert (m["n"], m["c"]) == (4, 2)
    assert m["pass@k"] == {1: pass_at_k(4, 2, 1), 3: pass_at_k(4, 2, 3)}
    assert m["pass^k"] == {1: pass_hat_k(4, 2, 1), 3: pass_hat_k(4, 2, 3)}
    assert m["tool_calls"] == 0.75 and m["first_code_pos"] == 10.0 and m["parse_errors"] == 2


def test_aggregate_counts_errors_guard_policies_and_endings():
    guard = [{"policy": "no-network", "action": "block", "phase": "pre"}]
    records = [
        record(True, errors={"timeout": 1}),
        record(False, errors={"tool_error": 1, "sandbox_died": 1}, guard=guard),
        record(False, tool_calls=0, guard=[*guard, {"policy": "pii", "action": "penalize", "phase": "post"}]),
        record(True, tool_calls=2),
    ]
    problems = [problem_metrics(records[:2], [1]), problem_metrics(records[2:], [1])]
    agg = aggregate(problems, records, [1])
    assert agg["pass@k"][1]["mean"] == 0.5
    assert (agg["timeouts"], agg["tool_errors"], agg["parse_errors"]) == (1, 2, 0)
    assert agg["guard_by_policy"] == {"no-network": {"block": 2}, "pii": {"penalize": 1}}
    assert agg["guard_violations"] == 3
    assert agg["tool_calls_histogram"] == {0: 1, 1: 2, 2: 1}
    assert agg["code_use"] == 0.75 and agg["done"] == {"answer": 2, "no_answer": 2}
    assert agg["tokens_per_second"] == pytest.approx(80 / 2.0)


def test_a_clear_improvement_is_outside_the_interval():
    weak = entry("weak", [[False, False]] * 15 + [[True, False]] * 5)
    strong = entry("strong", [[True, True]] * 15 + [[True, False]] * 5, model_index=1)
    rows = {r["metric"]: r for r in compare(weak, strong, [1, 2], "model")}
    assert rows["pass@1"]["diff"] == pytest.approx(0.75)
    assert rows["pass@1"]["outside_ci"] and rows["pass@1"]["low"] > 0
    assert set(rows) == {"pass@1", "pass@2", "pass^1", "pass^2", "reward"}


def test_noise_is_not_outside_the_interval():
    a = entry("a", [[True, False], [False, False], [True, True], [False, True]] * 3)
    b = entry("b", [[False, False], [True, False], [True, True], [False, True]] * 3, model_index=1)
    row = compare(a, b, [1], "model")[0]
    assert row["diff"] == 0.0 and not row["outside_ci"] and row["low"] < 0 < row["high"]


def test_pairs_compare_models_at_each_tools_setting_and_tools_per_model():
    entries = [
        {"model_index": m, "tools": t} for m in range(3) for t in (True, False)
    ]  # 0 A+, 1 A-, 2 B+, 3 B-, 4 C+, 5 C-
    pairs = {(p.a, p.b, p.factor) for p in comparison_pairs(entries)}
    assert pairs == {
        (0, 2, "model"),
        (0, 4, "model"),
        (1, 3, "model"),
        (1, 5, "model"),
        (0, 1, "tools"),
        (2, 3, "tools"),
        (4, 5, "tools"),
    }
