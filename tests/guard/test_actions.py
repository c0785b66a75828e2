"""Each action through a real AgentLoop: block, terminate, penalize and log, before a call and after it."""

from __future__ import annotations

from .guard_helpers import call, guard_of, policy, run_script

SOCKET = call("import socket\nsocket.create_connection(('evil.example.com', 80))")
SECRET = {"type": "regex", "patterns": {"aws key": "AKIA[0-9A-Z]{16}"}}


def test_block_before_the_call_runs_tells_the_model_which_policy(arith_task, tokenizer):
    guard = guard_of(policy("block"))
    traj, tool = run_script(arith_task, tokenizer, guard, [SOCKET, call("print(1)"), "\\boxed{1}"])
    assert tool.calls == ["print(1)\n"]  # the blocked call never ran; the next one did
    assert "blocked by policy (no-net: import of socket)" in traj.steps[0].observation
    (event,) = traj.steps[0].guard
    assert (event.policy, event.action, event.phase, event.checker, event.span) == (
        "no-net", "block", "pre", "python_ast", "import socket",
    )  # fmt: skip
    assert traj.done == "answer" and traj.steps[1].guard == []


def test_terminate_ends_the_trajectory(arith_task, tokenizer):
    traj, tool = run_script(arith_task, tokenizer, guard_of(policy("terminate")), [SOCKET, call("print(1)"), "1"])
    assert tool.calls == [] and traj.done == "guard" and len(traj.steps) == 1
    assert traj.answer is None and traj.reward == 0.0


def test_penalize_runs_the_call_and_subtracts_the_penalty(arith_task, tokenizer):
    problem = arith_task.problems("train", 1)[0]
    guard = guard_of(policy("penalize", penalty=0.25))
    traj, tool = run_script(arith_task, tokenizer, guard, [SOCKET, f"\\boxed{{{problem.answer}}}"])
    assert len(tool.calls) == 1 and traj.steps[0].guard[0].penalty == 0.25
    assert (traj.score, traj.penalty, traj.reward) == (1.0, 0.25, 0.75)


def test_penalize_without_its_own_penalty_takes_the_configured_one(arith_task, tokenizer):
    traj, _ = run_script(arith_task, tokenizer, guard_of(policy("penalize"), penalty=0.4), [SOCKET, "\\boxed{1}"])
    assert traj.penalty == 0.4


def test_log_records_and_changes_nothing(arith_task, tokenizer):
    problem = arith_task.problems("train", 1)[0]
    script = [SOCKET, f"\\boxed{{{problem.answer}}}"]
    logged, tool = run_script(arith_task, tokenizer, guard_of(policy("log")), script)
    plain, _ = run_script(arith_task, tokenizer, None, script)
    assert len(tool.calls) == 1 and [e.action for e in logged.steps[0].guard] == ["log"]
    assert logged.steps[0].observation == plain.steps[0].observation
    assert (logged.reward, logged.done) == (plain.reward, plain.done) == (1.0, "answer")


def test_post_check_withholds_an_output_that_violates(arith_task, tokenizer):
    from ..rollout.loop_helpers import EchoTool

    leaky = EchoTool("key=AKIAABCDEFGHIJKLMNOP")
    guard = guard_of(policy("block", SECRET, id="no-secrets"))
    traj, tool = run_script(arith_task, tokenizer, guard, [call("print(open('k').read())"), "\\boxed{1}"], leaky)
    assert len(tool.calls) == 1  # arguments were clean: it ran
    assert "AKIA" not in traj.steps[0].observation and "withheld by policy no-secrets" in traj.steps[0].observation
    assert [(e.phase, e.action) for e in traj.steps[0].guard] == [("post", "block")]


def test_post_check_on_the_final_answer_withholds_it(arith_task, tokenizer):
    guard = guard_of(policy("block", SECRET, id="no-secrets"))
    traj, _ = run_script(arith_task, tokenizer, guard, [call("print(1)"), "\\boxed{AKIAABCDEFGHIJKLMNOP}"])
    assert traj.answer is None and traj.done == "guard"
    assert [(e.phase, e.span) for e in traj.steps[1].guard] == [("post", "AKIAABCDEFGHIJKLMNOP")]


def test_a_policy_fires_once_per_step(arith_task, tokenizer):
    """A call flagged before it runs is not flagged again on its output."""
    from ..rollout.loop_helpers import EchoTool

    guard = guard_of(policy("penalize", SECRET, id="no-secrets", penalty=0.1))
    script = [call("print('AKIAABCDEFGHIJKLMNOP')"), "\\boxed{1}"]
    traj, _ = run_script(arith_task, tokenizer, guard, script, EchoTool("AKIAABCDEFGHIJKLMNOP"))
    assert [e.phase for e in traj.steps[0].guard] == ["pre"] and traj.penalty == 0.1


def test_clean_episodes_raise_no_events(arith_task, tokenizer):
    problem = arith_task.problems("train", 1)[0]
    traj, _ = run_script(arith_task, tokenizer, guard_of(policy("block")), arith_task.demo(problem))
    assert traj.guard_events == [] and traj.reward == 1.0
