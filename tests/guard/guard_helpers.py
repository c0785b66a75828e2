"""Guards built from policy dicts, and loops that run scripted episodes through them."""

from __future__ import annotations

from agentrl.config import GuardConfig
from agentrl.guard import Guard, parse_policies

from ..rollout.loop_helpers import EchoTool, make_loop

NO_SOCKET = {
    "id": "no-net",
    "description": "No network from Python.",
    "checker": {"type": "python_ast", "imports": ["socket"]},
}


def policy(action: str = "block", checker: dict | None = None, **extra) -> dict:
    return {"id": extra.pop("id", "no-net"), "description": "No network from Python.",
            "checker": checker or NO_SOCKET["checker"], "action": action, **extra}  # fmt: skip


def guard_of(*policies: dict, tools=("python",), **cfg) -> Guard:
    return Guard.from_policies(parse_policies(list(policies), "task.yaml", tools), GuardConfig(**cfg))


def run_script(task, tokenizer, guard, script: list[str], tool=None):
    """One scripted episode of the first train problem through a real AgentLoop; returns (trajectory, tool)."""
    problem = task.problems("train", 1)[0]
    tool = tool or EchoTool(problem.answer)
    loop = make_loop(task, tokenizer, tool, guard=guard, max_turns=4)
    try:
        (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: script}))
    finally:
        loop.pool.shutdown()
    return traj, tool


def call(code: str) -> str:
    return f"```python\n{code}\n```"
