"""Doubles for agent-loop tests: a python tool that echoes, and a loop built around given tools."""

from __future__ import annotations

from agentrl.config import RolloutConfig
from agentrl.rollout.chain import AgentLoop
from agentrl.tools.base import ToolResult


class EchoTool:
    """A python tool double: answers every call with a fixed text, or raises if told to."""

    name = "python"
    schema = {"type": "object"}

    def __init__(self, output="56088", raises=False):
        self.output, self.raises, self.calls = output, raises, []

    def open_state(self):
        return None

    def run(self, args, state):
        self.calls.append(args["code"])
        if self.raises:
            raise RuntimeError("sandbox exploded")
        return ToolResult(self.output)


def make_loop(task, tokenizer, tool, guard=None, **overrides):
    cfg = RolloutConfig(**{"max_turns": 3, "max_new_tokens": 24, **overrides})
    return AgentLoop(task, tokenizer, {tool.name: tool}, cfg, max_length=512, guard=guard)
