"""Doubles for agent-loop tests: a python tool that echoes, and a loop built around given tools."""

from __future__ import annotations

from agentrl.config import RolloutConfig
from agentrl.engines import Generation
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


class ScriptedEngine:
    """An engine double with continuous batching: every conversation's n-th turn is `script[n]`, decoded one token
    per stream step (so short turns finish first); `turns_returned` counts the turns handed back."""

    def __init__(self, tokenizer, script: list[str]):
        self.tokenizer, self.script = tokenizer, script
        self.turns: dict[object, int] = {}
        self.turns_returned = 0

    def next_turn(self, key) -> Generation:
        turn = self.turns.get(key, 0)
        self.turns[key] = turn + 1
        ids = self.tokenizer.encode(self.script[turn], add_special_tokens=False)
        final = turn == len(self.script) - 1
        ids = ids + [self.tokenizer.eos_token_id] if final else ids
        return Generation(ids, [0.0] * len(ids), "eos" if final else "stop")

    def generate(self, prompts, params, stop=None, keys=None) -> list[Generation]:
        self.turns_returned += len(prompts)
        return [self.next_turn(k) for k in keys]

    def stream(self, params, stop=None) -> ScriptedStream:
        return ScriptedStream(self)


class ScriptedStream:
    def __init__(self, engine: ScriptedEngine):
        self.engine = engine
        self.rows: list[list] = []  # [tag, generation, tokens decoded so far]

    def add(self, tag, prompt, key=None) -> None:
        self.rows.append([tag, self.engine.next_turn(key), 0])

    def __len__(self) -> int:
        return len(self.rows)

    def close(self) -> None:
        self.rows = []

    def step(self) -> list[tuple[object, Generation]]:
        for row in self.rows:
            row[2] += 1
        done = [(tag, gen) for tag, gen, n in self.rows if n >= len(gen.token_ids)]
        self.rows = [row for row in self.rows if row[2] < len(row[1].token_ids)]
        self.engine.turns_returned += len(done)
        return done
