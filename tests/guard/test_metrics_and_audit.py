"""guard_metrics for metrics.jsonl, and the audit: a replay of a saved rollout finds what the loop found."""

from __future__ import annotations

import json

from agentrl.guard import audit, guard_metrics, trajectory_from_record
from agentrl.trajectory import GuardEvent, Step, Trajectory

from .guard_helpers import call, guard_of, policy, run_script


def traj_with(*events: GuardEvent, done: str = "answer", penalty: float = 0.0) -> Trajectory:
    steps = [Step([], [], "", "tool_call", guard=[e]) for e in events] or [Step([], [], "", "answer")]
    return Trajectory("p", "g", [], steps, done=done, penalty=penalty)


def test_guard_metrics_count_violations_by_policy_and_action():
    ev = lambda policy, action, error=None: GuardEvent(policy, action, "pre", "rule", error=error)  # noqa: E731
    trajs = [
        traj_with(ev("a", "block"), ev("b", "penalize"), penalty=0.5),
        traj_with(ev("a", "terminate"), done="guard"),
        traj_with(ev("c", "log", error="RuntimeError: x")),
        traj_with(),
    ]
    m = guard_metrics(trajs)
    assert m["guard/violations_per_traj"] == 3 / 4 and m["guard/violation_rate"] == 2 / 4
    assert m["guard/violations_per_step"] == 3 / 5
    assert (m["guard/blocked"], m["guard/terminated"], m["guard/penalized"], m["guard/errors"]) == (1, 1, 1, 1)
    assert m["guard/policy/a"] == 2 / 4 and m["guard/policy/b"] == 1 / 4 and "guard/policy/c" not in m
    assert m["guard/penalty_mean"] == 0.5 / 4
    assert all(isinstance(v, float) for v in m.values())


def test_guard_metrics_of_nothing_are_zero():
    assert guard_metrics([])["guard/violations_per_traj"] == 0.0


def test_replaying_a_saved_rollout_finds_the_loops_events(arith_task, tokenizer):
    guard = guard_of(policy("block"), policy("penalize", {"type": "regex", "patterns": ["boxed"]}, id="no-box"))
    script = [call("print(2)"), call("import socket"), "\\boxed{1}"]
    traj, _ = run_script(arith_task, tokenizer, guard, script)
    row = json.loads(json.dumps({"step": 3, **traj.to_record()}))  # as rollouts.jsonl stores it
    (replayed,) = audit(guard, [row])
    assert [s.guard for s in replayed.steps] == [s.guard for s in traj.steps]
    assert replayed.penalty == traj.penalty == 0.5
    assert trajectory_from_record(row).guard_events == traj.guard_events
