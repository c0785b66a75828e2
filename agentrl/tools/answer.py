"""The `answer` tool: ends the trajectory with the final answer (the agent loop stops on `ToolResult.answer`)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from agentrl.config import Config
from agentrl.errors import AgentRLError
from agentrl.tasks import Task
from agentrl.tools import register_tool
from agentrl.tools.base import ToolResult
from agentrl.tools.sources import task_yaml


class AnswerTool:
    name = "answer"
    description = "Give the final answer. This ends the episode."
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "description": "The final answer; ends the episode."}},
        "required": ["answer"],
    }

    def open_state(self) -> None:
        return None

    def run(self, args: dict[str, Any], state: None) -> ToolResult:
        answer = args.get("answer")
        if isinstance(answer, bool) or not isinstance(answer, str | int | float):
            return ToolResult('answer needs an "answer" string argument', error="bad_arguments")
        return ToolResult("", answer=str(answer).strip())


@register_tool("answer")
def build_answer(task: Task, cfg: Config, settings: dict[str, Any], stack: ExitStack) -> AnswerTool:
    """Settings: none."""
    if settings:
        raise AgentRLError(f"{task_yaml(task)}: the answer tool takes no settings")
    return AnswerTool()
