"""Message formats: how the prompt is rendered, where a message ends, how it is read, how results come back.

- `fenced` and `hermes` (text formats): the tiny model learns them from demonstrations. A tool call ends the
  message once complete (the stop rule); its result is text appended inside the same assistant turn.
- `native`: a pretrained model's own chat template and tool-calling convention. The prompt is rendered with the
  tools' schemas (`apply_chat_template(..., tools=...)`); a message ends at the model's end-of-turn token, which
  is kept and trained on; `rollout.tool_parser` (vLLM's names: hermes, llama3_json) reads its calls; results go
  back as `role: tool` messages rendered by the template, as a delta (agentrl.rollout.templates): what the
  model generated is never re-rendered or re-tokenized.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from agentrl.engines.base import StopRule
from agentrl.errors import AgentRLError
from agentrl.rollout.parsers import FORMATS, TOOL_PARSERS, Calls, ToolCall, strip_think
from agentrl.rollout.templates import MARKER, ChatTemplate, assistant, tool_message
from agentrl.tasks import DemoMessage, demo_calls, demo_text

TOOLS_PROMPT = """You can call these tools, described as JSON schemas:
<tools>
{schemas}
</tools>
To call a tool, write in your message:
<tool_call>
{{"name": "<tool name>", "arguments": {{<the arguments as a JSON object>}}}}
</tool_call>
Each result comes back to you in a message from the tool. When you are done, reply without a tool call."""
"""agentrl's own words for templates that do not render `tools=` (plain ChatML, e.g. SmolLM2)."""


class MessageFormat(Protocol):
    name: str
    stop_rule: StopRule
    """Ends a message early (a text format's complete tool call); native messages end at end-of-turn tokens."""
    needs_end_of_turn: bool
    """True if a message is complete only with its end-of-turn token (one cut at the token limit ends the run)."""

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]: ...

    def read(self, text: str) -> Calls:
        """The calls of a decoded model message, a parse error, or the final answer."""
        ...

    def observation_text(self, outputs: Sequence[str]) -> str:
        """What the tools said, as text (guards check it; reports show it)."""
        ...

    def observation_ids(self, results: Sequence[tuple[str, str]]) -> list[int]:
        """The ids fed back after a message for its (tool name, output) results, in call order."""
        ...

    def message_ids(self, message: DemoMessage, final: bool) -> list[int]:
        """The ids a model would generate for an expert's message (demonstrations through the real loop)."""
        ...


class TextFormat:
    """fenced or hermes: calls and results are text inside the assistant turn."""

    needs_end_of_turn = False

    def __init__(self, name: str, tokenizer):
        self.name, self.tokenizer, self.text = name, tokenizer, FORMATS[name]
        self.stop_rule = StopRule(
            trigger_ids=frozenset(
                i for i in range(len(tokenizer)) if any(c in tokenizer.decode([i]) for c in self.text.stop_chars)
            ),
            check=lambda ids: self.text.call_complete(tokenizer.decode(ids, skip_special_tokens=True)),
        )

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return chat_prompt_ids(self.tokenizer, messages)

    def read(self, text: str) -> Calls:
        parsed = self.text.parse(text)
        return [parsed] if isinstance(parsed, ToolCall) else parsed

    def observation_text(self, outputs: Sequence[str]) -> str:
        return "".join(self.text.observation(output) for output in outputs)

    def observation_ids(self, results: Sequence[tuple[str, str]]) -> list[int]:
        return self.tokenizer.encode(self.observation_text([out for _, out in results]), add_special_tokens=False)

    def message_ids(self, message: DemoMessage, final: bool) -> list[int]:
        ids = self.tokenizer.encode(demo_text(message, self.name), add_special_tokens=False)
        return ids + [self.tokenizer.eos_token_id] if final else ids


class NativeFormat:
    """The model's own chat template: tools rendered by it, turns ended by its end-of-turn token."""

    name = "native"
    needs_end_of_turn = True
    stop_rule = StopRule(frozenset(), lambda ids: False)

    def __init__(self, tokenizer, schemas: Sequence[dict[str, Any]], tool_parser: str = "auto", model_name: str = ""):
        self.tokenizer = tokenizer
        self.template = ChatTemplate(tokenizer, schemas, model_name or "the model")
        self.tool_parser = detect_tool_parser(self.template) if tool_parser == "auto" else tool_parser
        self.parse = TOOL_PARSERS[self.tool_parser]
        self.system_tools = "" if self.template.renders_tools or not schemas else tools_prompt(schemas)
        """The tools in agentrl's words, for a template that does not render `tools=`."""

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        if self.system_tools:
            messages = with_system_text(messages, self.system_tools)
        return self.template.render(messages, generation_prompt=True)

    def read(self, text: str) -> Calls:
        return self.parse(text)

    def observation_text(self, outputs: Sequence[str]) -> str:
        return "\n".join(outputs)

    def observation_ids(self, results: Sequence[tuple[str, str]]) -> list[int]:
        return self.template.tool_results([tool_message(name, output) for name, output in results])

    def message_ids(self, message: DemoMessage, final: bool) -> list[int]:
        content, calls = demo_calls(message)
        return self.template.assistant_message(assistant(content, calls))

    def describe(self) -> dict[str, Any]:
        """What was detected, for logs and `agentrl tasks render`."""
        tpl = self.template
        return {
            "tool_parser": self.tool_parser,
            "template_renders_tools": tpl.renders_tools,
            "template_renders_tool_calls": tpl.renders_tool_calls,
            "append_only": tpl.append_only,
            "end_of_turn": self.tokenizer.convert_ids_to_tokens(tpl.end_of_turn),
        }


def detect_tool_parser(template: ChatTemplate) -> str:
    """hermes or llama3_json, from how the template writes a call (hermes where it writes none: agentrl's words)."""
    if not template.renders_tool_calls:
        return "hermes"
    written = template.tokenizer.decode(template.assistant_message(assistant("", [(MARKER, {"x": 1})])))
    written = strip_think(written)
    if "<tool_call>" in written:
        return "hermes"
    if '"parameters"' in written or written.lstrip().startswith("{"):
        return "llama3_json"
    raise AgentRLError(
        f"cannot tell the tool-call convention of this chat template (it writes a call as {written!r}); set "
        f"rollout.tool_parser to one of {', '.join(TOOL_PARSERS)}"
    )


def tools_prompt(schemas: Sequence[dict[str, Any]]) -> str:
    return TOOLS_PROMPT.format(schemas="\n".join(json.dumps(s) for s in schemas))


def with_system_text(messages: list[dict[str, str]], text: str) -> list[dict[str, str]]:
    """`text` first in the system message (a new one if there is none)."""
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{text}\n\n{messages[0]['content']}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def chat_prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(encoded["input_ids"])


def build_format(name: str, tokenizer, schemas: Sequence[dict[str, Any]], tool_parser: str = "auto") -> MessageFormat:
    if name == "native":
        return NativeFormat(tokenizer, schemas, tool_parser, getattr(tokenizer, "name_or_path", "") or "")
    return TextFormat(name, tokenizer)
