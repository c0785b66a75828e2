"""A checker that raises never crashes the rollout: fail-open records it and lets the step run, fail-closed blocks."""

from __future__ import annotations

import pytest

from agentrl.guard import CHECKERS, CheckerSettings

from .guard_helpers import call, guard_of, policy, run_script


class Exploding:
    """A checker type whose check always raises."""

    type = "explode"
    Settings = CheckerSettings

    def __init__(self, settings, context):
        pass

    def check(self, view):
        raise RuntimeError("checker bug")


@pytest.fixture(autouse=True)
def exploding_checker(monkeypatch):
    monkeypatch.setitem(CHECKERS, "explode", Exploding)


def test_fail_open_records_the_error_and_runs_the_call(arith_task, tokenizer):
    problem = arith_task.problems("train", 1)[0]
    guard = guard_of(policy("block", {"type": "explode"}), fail_mode="open")
    traj, tool = run_script(arith_task, tokenizer, guard, arith_task.demo(problem))
    assert len(tool.calls) == 1 and traj.done == "answer" and traj.reward == 1.0
    events = traj.guard_events
    assert {(e.phase, e.action) for e in events} == {("pre", "log"), ("post", "log")}
    assert all(e.error == "RuntimeError: checker bug" and e.penalty == 0.0 for e in events)


def test_fail_closed_blocks_the_call_and_the_answer(arith_task, tokenizer):
    problem = arith_task.problems("train", 1)[0]
    guard = guard_of(policy("penalize", {"type": "explode"}), fail_mode="closed")
    traj, tool = run_script(arith_task, tokenizer, guard, arith_task.demo(problem))
    assert tool.calls == [] and "blocked by policy" in traj.steps[0].observation
    assert traj.answer is None and traj.done == "guard"
    assert all(e.action == "block" and e.error for e in traj.guard_events)


def test_other_policies_still_apply_beside_a_broken_one(arith_task, tokenizer):
    guard = guard_of(policy("block", {"type": "explode"}, id="broken"), policy("block"), fail_mode="open")
    traj, tool = run_script(arith_task, tokenizer, guard, [call("import socket"), "\\boxed{1}"])
    assert tool.calls == []
    assert {(e.policy, e.action, e.error is None) for e in traj.steps[0].guard} >= {
        ("broken", "log", False),
        ("no-net", "block", True),
    }


def test_a_guard_that_cannot_even_read_the_step_still_returns_an_event():
    guard = guard_of(policy("block"))
    (event,) = guard.pre_check(None, None)  # nonsense in: an event out, no exception
    assert event.policy == "guard" and event.error and event.action == "log"
