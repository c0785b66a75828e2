"""Reading a model message: tool calls, parse errors, or the final answer.

Text formats, for models that learn the convention from demonstrations (the tiny default):
- `fenced`: the TIR format. A ```python block is a call of the python tool; its output comes back in an
  ```output block. A message without a code block is the final answer.
- `hermes`: JSON calls in <tool_call>{"name": ..., "arguments": {...}}</tool_call> tags (Qwen/Hermes).
Tool parsers of the native format (agentrl.rollout.formats), named as vLLM names its `--tool-call-parser`s:
- `hermes`: every <tool_call>...</tool_call> block of the message is a call (Qwen2.5, Qwen3, Hermes);
- `llama3_json`: a message that starts with a JSON object `{"name": ..., "parameters": {...}}` is a call, several
  separated by `;` (Llama 3.1-3.3; `<|python_tag|>` is a special token, gone from the decoded text).
The final answer is the content of the last \\boxed{...}, or of <answer>...</answer>, outside any <think> block.
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
THINK_BLOCK = re.compile(r"^\s*(?:<think>)?.*?</think>", re.DOTALL)


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
Calls = list[ToolCall] | ParseError | FinalAnswer
"""What a native tool parser reads: the message's calls in order (at least one), a parse error, or the answer."""


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


def strip_think(text: str) -> str:
    """The message without its leading reasoning block (`<think>...</think>`; Qwen3 may open it in the prompt)."""
    return THINK_BLOCK.sub("", text, count=1) if "</think>" in text else text


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
        return _json_call(match.group(1), "arguments")

    def observation(self, text: str) -> str:
        return f"\n<tool_response>\n{text}\n</tool_response>\n"


FORMATS = {f.name: f for f in (FencedFormat(), HermesFormat())}


def _json_call(body: str | dict, args_key: str) -> ToolCall | ParseError:
    """One call from its JSON text (or decoded object): {"name": ..., args_key: {...}}."""
    try:
        call = json.loads(body) if isinstance(body, str) else body
    except json.JSONDecodeError as exc:
        return ParseError(f"tool call is not valid JSON: {exc.msg}")
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return ParseError('tool call must be an object with a "name" string')
    args = call.get(args_key, call.get("arguments", {}))
    if not isinstance(args, dict):
        return ParseError(f'"{args_key}" must be an object')
    return ToolCall(call["name"], args)


def _final(content: str) -> FinalAnswer:
    return FinalAnswer(extract_answer(content))


def parse_hermes_calls(text: str) -> Calls:
    """Every <tool_call> block in order; a message without one is the final answer."""
    content = strip_think(text)
    if "<tool_call>" not in content:
        return _final(content)
    bodies = HERMES_CALL.findall(content)
    if content.count("<tool_call>") > len(bodies):
        return ParseError("unclosed <tool_call> tag")
    calls = [_json_call(body, "arguments") for body in bodies]
    return next((c for c in calls if isinstance(c, ParseError)), calls)


def parse_llama3_json(text: str) -> Calls:
    """A message that is JSON objects (`;`-separated) calls tools; any other message is the final answer."""
    content = strip_think(text).strip()
    if not content.startswith("{"):
        return _final(content)
    decoder, calls, i = json.JSONDecoder(), [], 0
    while i < len(content):
        try:
            obj, i = decoder.raw_decode(content, i)
        except json.JSONDecodeError as exc:
            return ParseError(f"tool call is not valid JSON: {exc.msg}")
        call = _json_call(obj, "parameters")
        if isinstance(call, ParseError):
            return call
        calls.append(call)
        i = len(content) - len(content[i:].lstrip().removeprefix(";").lstrip())
    return calls


TOOL_PARSERS = {"hermes": parse_hermes_calls, "llama3_json": parse_llama3_json}
"""Native-format tool parsers, by vLLM's names."""
