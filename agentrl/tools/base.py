"""The tool protocol: a name, a description, a JSON schema of its arguments, and `run(args, state)`.

Tools know nothing of engines or trainers. Per-trajectory state (a sandbox session, a browser context) lives in
the object `open_state()` returns, which the agent loop closes when the trajectory ends. Tree sampling branches
a trajectory at a step: a state with a `fork()` method is forked there; a state without one is rebuilt by
replaying the prefix's calls of that tool into a fresh state (`None` states need neither).

A tool that serves only so many trajectories well at once (a browser keeps so many pages open) says so in a
`capacity` attribute; the agent loop then runs a batch in waves of at most that many trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class ToolResult:
    output: str
    error: str | None = None
    """None on success, else a category: tool_error, timeout, sandbox_died, bad_arguments, unknown_tool, blocked."""
    answer: str | None = None
    """Set by tools that end the trajectory with a final answer (the `answer` tool)."""


class ToolState(Protocol):
    def close(self) -> None: ...


class ForkableState(ToolState, Protocol):
    def fork(self) -> ForkableState:
        """An independent copy of this state (tree sampling branches from it)."""
        ...


class Tool(Protocol):
    name: str
    description: str
    """What the tool does, for models that read tool schemas (native format)."""
    schema: dict[str, Any]
    """JSON schema of the arguments."""

    def open_state(self) -> ToolState | None: ...

    def run(self, args: dict[str, Any], state: ToolState | None) -> ToolResult: ...


def function_schema(tool: Tool) -> dict[str, Any]:
    """The tool as an OpenAI-style function schema, as chat templates take them in `tools=`."""
    description = getattr(tool, "description", "")
    return {"type": "function", "function": {"name": tool.name, "description": description, "parameters": tool.schema}}


def truncate(text: str, max_chars: int) -> str:
    """Cut long tool output in the middle, saying how much was dropped."""
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return f"{text[:half]}\n…[{len(text) - 2 * half} chars cut]…\n{text[-half:]}"
