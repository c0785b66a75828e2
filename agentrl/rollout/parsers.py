"""Tool-call formats: what ends a tool call while generating, and how a model message is read.

- `fenced`: the TIR format. A ```python block is a call of the python tool; its output comes back in an
  ```output block. A message without a code block is the final answer.
- `hermes`: JSON calls in <tool_call>{"name": ..., "arguments": {...}}</tool_call> tags (Qwen/Hermes).
The final answer is the content of the last \\boxed{...}, or of <answer>...</answer>.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

FENCE_OPEN = "```python"
FENCED_CALL = re.compile(r"```python[^\n]*\n(.*?)```", re.DOTALL)
HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class ParseError:
    message: str


@dataclass
class FinalAnswer:
    answer: str | None
    """None when the message holds no recognisable answer."""


Parsed = ToolCall | ParseError | FinalAnswer


def extract_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j].strip()
    return None


def extract_answer(text: str) -> str | None:
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    tags = ANSWER_TAG.findall(text)
    return tags[-1].strip() if tags else None


class FencedFormat:
    name = "fenced"
    stop_chars = "`"
    """A call can only end on a token that contains one of these characters."""

    def call_complete(self, text: str) -> bool:
        start = text.find(FENCE_OPEN)
        return start >= 0 and text.find("```", start + len(FENCE_OPEN)) >= 0

    def parse(self, text: str) -> Parsed:
        if FENCE_OPEN in text:
            match = FENCED_CALL.search(text)
            if match is None:
                return ParseError("unclosed ```python block")
            return ToolCall("python", {"code": match.group(1)})
        return FinalAnswer(extract_answer(text))

    def observation(self, text: str) -> str:
        return f"\n```output\n{text}\n```\n"


class HermesFormat:
    name = "hermes"
    stop_chars = ">"

    def call_complete(self, text: str) -> bool:
        return "</tool_call>" in text

    def parse(self, text: str) -> Parsed:
        if "<tool_call>" not in text:
            return FinalAnswer(extract_answer(text))
        match = HERMES_CALL.search(text)
        if match is None:
            return ParseError("unclosed <tool_call> tag")
        try:
            call = json.loads(match.group(1))
        except json.JSONDecodeError as exc:
            return ParseError(f"tool call is not valid JSON: {exc.msg}")
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return ParseError('tool call must be an object with a "name" string')
        args = call.get("arguments", {})
        if not isinstance(args, dict):
            return ParseError('"arguments" must be an object')
        return ToolCall(call["name"], args)

    def observation(self, text: str) -> str:
        return f"\n<tool_response>\n{text}\n</tool_response>\n"


FORMATS = {f.name: f for f in (FencedFormat(), HermesFormat())}
