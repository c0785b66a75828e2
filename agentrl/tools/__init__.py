"""Tools the agent calls, built from a task's `tools:` settings through a small registry.

A builder gets the task, the run config, the tool's settings from task.yaml and an ExitStack that owns
shared resources (a sandbox, a browser, a web server), and returns a `Tool`. Register new tools with
`@register_tool("name")`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from agentrl.config import Config
from agentrl.errors import AgentRLError
from agentrl.tasks import Task
from agentrl.tools.base import Tool, ToolResult, truncate

ToolBuilder = Callable[[Task, Config, dict[str, Any], ExitStack], Tool]
TOOL_BUILDERS: dict[str, ToolBuilder] = {}


def register_tool(name: str) -> Callable[[ToolBuilder], ToolBuilder]:
    def decorate(builder: ToolBuilder) -> ToolBuilder:
        TOOL_BUILDERS[name] = builder
        return builder

    return decorate


def check_tool_names(task: Task) -> None:
    unknown = [name for name in task.spec.tools if name not in TOOL_BUILDERS]
    if unknown:
        known = ", ".join(sorted(TOOL_BUILDERS))
        raise AgentRLError(f"{task.root / 'task.yaml'}: unknown tool(s) {', '.join(unknown)}; known: {known}")


def build_tools(task: Task, cfg: Config, stack: ExitStack) -> dict[str, Tool]:
    """The task's tools, ready to run; shared resources close with `stack`."""
    check_tool_names(task)
    return {name: TOOL_BUILDERS[name](task, cfg, settings, stack) for name, settings in task.spec.tools.items()}


# registers the bundled tools
from agentrl.tools import answer as _answer  # noqa: E402,F401
from agentrl.tools import browser as _browser  # noqa: E402,F401
from agentrl.tools import python as _python  # noqa: E402,F401
from agentrl.tools import search as _search  # noqa: E402,F401

__all__ = ["TOOL_BUILDERS", "Tool", "ToolResult", "build_tools", "check_tool_names", "register_tool", "truncate"]
