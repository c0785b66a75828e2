"""Real sandbox failures inside the agent loop: a cell that times out, a kernel that dies. Each fails its step
with a recorded error; the trajectory goes on and the next call works."""

from __future__ import annotations

import pytest

from agentrl.sandbox import open_sandbox
from agentrl.tools.python import PythonTool

from .loop_helpers import make_loop


@pytest.fixture(scope="module")
def python_tool():
    with open_sandbox(backend="local", timeout=1.0, memory_mb=256) as sandbox:
        yield PythonTool(sandbox, timeout=1.0, max_chars=300)


def run_script(arith_task, tokenizer, tool, script):
    problem = arith_task.problems("train", 1)[0]
    loop = make_loop(arith_task, tokenizer, tool, max_turns=4, max_tool_calls=4)
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: [*script, "\\boxed{0}"]}))
    return traj


def test_a_cell_that_times_out_fails_its_step_and_the_session_keeps_its_state(arith_task, tokenizer, python_tool):
    traj = run_script(
        arith_task,
        tokenizer,
        python_tool,
        ["```python\nx = 41\n```", "```python\nwhile True: pass\n```", "```python\nx + 1\n```"],
    )
    assert [s.error for s in traj.steps] == [None, "timeout", None, None]
    assert "42" in traj.steps[2].observation and traj.done == "answer"


def test_a_kernel_that_dies_fails_its_step_and_the_next_call_gets_a_fresh_one(arith_task, tokenizer, python_tool):
    kill_kernel = (
        "```python\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(os.getpid(), signal.SIGKILL)\n```"
    )
    traj = run_script(
        arith_task, tokenizer, python_tool, ["```python\nx = 41\n```", kill_kernel, "```python\n6 * 7\n```"]
    )
    errors = [s.error for s in traj.steps]
    assert errors[0] is None and errors[1] in ("sandbox_died", "tool_error") and errors[2] is None
    assert "SandboxCrash" in traj.steps[1].observation or errors[1] == "sandbox_died"
    assert "42" in traj.steps[2].observation and traj.done == "answer"
