"""A model's own chat template, probed: what it renders of tools, and the tokens it adds for new messages.

The native format never re-renders a conversation. It renders fixed probe conversations and keeps the tokens a
template adds for the new part (the delta technique):
- an assistant message (a demonstration): the ids of [probe user, message] after those of [probe user] with the
  generation prompt, up to and including the turn's end-of-turn token;
- tool results: the ids of [probe user, probe assistant, tool messages] with the generation prompt, after the
  probe assistant's end-of-turn token. The template's separator after that token (Qwen's `\\n`) belongs to the
  delta: the model stops at its end-of-turn token and never generates the separator.
What a template does with tools is found the same way, by rendering probes, never from the model's name.
Templates differ: Qwen2.5, Qwen3 and Llama 3.1 render `tools=` and `tool_calls`; plain ChatML (SmolLM2) renders
neither, and then agentrl states the tools in the system message and writes calls as hermes text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from agentrl.errors import AgentRLError

Message = dict[str, Any]
PROBE_USER: Message = {"role": "user", "content": "Hello."}
PROBE_ASSISTANT: Message = {"role": "assistant", "content": "Hello."}
MARKER = "agentrl_probe_7f3a"
"""A string no template writes by itself: found in a render, it shows the template rendered that part."""
FALLBACK = "use --set rollout.format=fenced or hermes, which do not need the model's template"


def hermes_call_text(name: str, arguments: dict[str, Any]) -> str:
    """A call written as Qwen's and Hermes' templates write it."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


class ChatTemplate:
    """A tokenizer's chat template with the tool schemas of a run; renders are token ids."""

    def __init__(self, tokenizer, schemas: Sequence[dict[str, Any]], name: str = "the model"):
        if not getattr(tokenizer, "chat_template", None):
            raise AgentRLError(f"{name} has no chat template, so native format cannot render its turns; {FALLBACK}")
        self.tokenizer, self.schemas, self.name = tokenizer, list(schemas), name
        self._check_tool_messages()

    def render(self, messages: Sequence[Message], generation_prompt: bool) -> list[int]:
        try:
            encoded = self.tokenizer.apply_chat_template(
                list(messages),
                tools=(self.schemas or None) if self.renders_tools else None,
                add_generation_prompt=generation_prompt,
                tokenize=True,
                return_dict=True,
            )
        except Exception as exc:  # jinja's raise_exception, a missing key ...
            raise AgentRLError(
                f"{self.name}'s chat template failed to render {[m['role'] for m in messages]}: "
                f"{type(exc).__name__}: {exc}; {FALLBACK}"
            ) from exc
        return list(encoded["input_ids"])

    # --- what the template renders (probes) ---

    @cached_property
    def renders_tools(self) -> bool:
        """True if the template writes the `tools=` schemas into the prompt (else agentrl says them itself)."""
        probe = [{"type": "function", "function": {"name": MARKER, "description": "", "parameters": {}}}]
        try:
            text = self.tokenizer.apply_chat_template([PROBE_USER], tools=probe, tokenize=False)
        except Exception:
            return False
        return MARKER in text

    @cached_property
    def renders_tool_calls(self) -> bool:
        """True if the template writes an assistant message's `tool_calls` (else calls go in as hermes text)."""
        message = {"role": "assistant", "content": "", "tool_calls": [_call(MARKER, {})]}
        try:
            text = self.tokenizer.apply_chat_template([PROBE_USER, message], tokenize=False)
        except Exception:
            return False
        return MARKER in text

    @cached_property
    def _opening(self) -> list[int]:
        """[probe user] with the generation prompt: what every assistant message's delta is cut from."""
        return self.render([PROBE_USER], True)

    @cached_property
    def _one_turn(self) -> list[int]:
        """[probe user, probe assistant]: what every tool-results delta is cut from."""
        return self.render([PROBE_USER, PROBE_ASSISTANT], False)

    @cached_property
    def end_of_turn(self) -> int:
        """The token that closes an assistant turn in this template: the first special token after its content."""
        delta = self._after(self._opening, self._one_turn)
        added = self.tokenizer.added_tokens_decoder
        specials = set(self.tokenizer.all_special_ids) | {i for i, token in added.items() if token.special}
        content = next(
            (k for k in range(len(delta) + 1) if PROBE_ASSISTANT["content"] in self.tokenizer.decode(delta[:k])), 0
        )
        for token in delta[content:]:
            if token in specials:
                return token
        raise AgentRLError(f"{self.name}'s chat template ends an assistant turn without a special token; {FALLBACK}")

    @cached_property
    def append_only(self) -> bool:
        """True if adding messages never changes the tokens of earlier ones (Qwen2.5, Llama 3.1); Qwen3 drops
        earlier turns' <think> blocks on re-render, so its conversations are not (see `tool_results`)."""
        thought = {"role": "assistant", "content": "<think>\nx\n</think>\n\nHello."}
        before = self.render([PROBE_USER, thought], False)
        after = self.render([PROBE_USER, thought, {"role": "user", "content": "Again."}], False)
        return after[: len(before)] == before

    # --- deltas ---

    def assistant_message(self, message: Message) -> list[int]:
        """The ids the model would generate for `message`, through its end-of-turn token."""
        if message.get("tool_calls") and not self.renders_tool_calls:
            message = as_hermes_content(message)
        delta = self._after(self._opening, self.render([PROBE_USER, message], False))
        if self.end_of_turn not in delta:
            raise AgentRLError(f"{self.name}'s chat template does not end an assistant turn; {FALLBACK}")
        return delta[: delta.index(self.end_of_turn) + 1]

    def tool_results(self, messages: Sequence[Message]) -> list[int]:
        """The ids after an assistant's end-of-turn token that feed back `messages` (`role: tool`) and open the
        next assistant turn.

        Cut after the probe assistant's end-of-turn token, counted: a template that re-renders earlier turns
        (Qwen3) may change tokens before it, never the number of turns."""
        full = self.render([PROBE_USER, PROBE_ASSISTANT, *messages], True)
        turns = self._one_turn.count(self.end_of_turn)
        ends = [i for i, t in enumerate(full) if t == self.end_of_turn]
        if len(ends) < turns:
            raise AgentRLError(f"{self.name}'s chat template renders tool messages unexpectedly; {FALLBACK}")
        return full[ends[turns - 1] + 1 :]

    def _after(self, prefix: list[int], full: list[int]) -> list[int]:
        if full[: len(prefix)] != prefix:
            raise AgentRLError(
                f"{self.name}'s chat template renders a turn's opening differently once the turn is written, so "
                f"the tokens the model generates cannot be found in it; {FALLBACK}"
            )
        return full[len(prefix) :]

    def _check_tool_messages(self) -> None:
        try:
            text = self.tokenizer.apply_chat_template(
                [PROBE_USER, PROBE_ASSISTANT, tool_message("python", MARKER)], tokenize=False
            )
        except Exception as exc:
            raise AgentRLError(
                f"{self.name}'s chat template raises on `tool` messages ({type(exc).__name__}: {exc}), so native "
                f"format cannot feed tool results back; {FALLBACK}"
            ) from exc
        if MARKER not in text:
            raise AgentRLError(
                f"{self.name}'s chat template drops `tool` messages, so native format cannot feed tool results "
                f"back; {FALLBACK}"
            )


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def tool_message(name: str, content: str) -> Message:
    return {"role": "tool", "name": name, "content": content}


def assistant(content: str, calls: Sequence[tuple[str, dict[str, Any]]] = ()) -> Message:
    """An assistant message in the OpenAI shape templates read: content plus `tool_calls`."""
    message: Message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [_call(name, args) for name, args in calls]
    return message


def as_hermes_content(message: Message) -> Message:
    """The message with its tool calls written into its content as hermes text (templates that drop tool_calls)."""
    calls = [hermes_call_text(c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]]
    content = "\n".join([message["content"], *calls] if message["content"] else calls)
    return {"role": "assistant", "content": content}
