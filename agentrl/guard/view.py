"""What a checker sees: the trajectory so far and the one item under check (a proposed call, an output, an answer).

The loop hands the guard a `Trajectory` and a `ToolCall` (pre) or a finished `Step` (post); `StepView` turns
both into one shape so that checkers never need to know which hook called them. Pure data: no checker logic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from agentrl.trajectory import Step, Trajectory

Phase = Literal["pre", "post"]
MAX_RENDERED_OUTPUT = 400
"""Characters of each tool output kept when a prefix is rendered as text for a learned checker."""


@dataclass
class StepView:
    """The item under check and the trajectory it belongs to.

    pre: `tool`/`arguments` are the proposed call, not run yet. post on a tool step: `observation` is the output
    fed back. post on the step that ends the trajectory: `answer` is the final message (or the answer tool's value).
    """

    phase: Phase
    steps: list[Step]
    """The trajectory so far; `steps[-1]` is the step under check."""
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    observation: str | None = None
    answer: str | None = None

    @property
    def index(self) -> int:
        return len(self.steps) - 1

    def arguments_text(self) -> str:
        return render_arguments(self.arguments)


def render_arguments(arguments: dict[str, Any] | None) -> str:
    """A call's arguments as text: a lone string argument (python's `code`) as is, else compact JSON."""
    arguments = arguments or {}
    if len(arguments) == 1 and isinstance(value := next(iter(arguments.values())), str):
        return value
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False)


def pre_view(traj: Trajectory, tool: str, arguments: dict[str, Any]) -> StepView:
    return StepView("pre", list(traj.steps), tool=tool, arguments=dict(arguments or {}))


def post_view(traj: Trajectory, step: Step) -> StepView:
    """A finished step: its output if it has one, else the message (or answer-tool value) that ended the episode."""
    steps = list(traj.steps[: _index(traj, step) + 1])
    if step.observation is not None:
        return StepView(
            "post", steps, tool=step.tool, arguments=dict(step.tool_args or {}), observation=step.observation
        )
    answer = step.action_text if step.tool is None else traj.answer
    return StepView("post", steps, tool=step.tool, arguments=dict(step.tool_args or {}), answer=answer)


def _index(traj: Trajectory, step: Step) -> int:
    for i in range(len(traj.steps) - 1, -1, -1):
        if traj.steps[i] is step:
            return i
    return len(traj.steps) - 1


def render_prefix(view: StepView, skip: set[int] = frozenset()) -> str:
    """The trajectory up to the item under check as plain lines (what a learned checker reads).

    Steps whose index is in `skip` are left out: a checker that already fired on a step must not fire again on
    it at every later step.
    """
    lines: list[str] = []
    for i, step in enumerate(view.steps[:-1]):
        if i not in skip:
            lines.extend(_step_lines(step.tool, step.tool_args, step.observation, _final_text(step)))
    if view.index not in skip:
        if view.phase == "pre":
            lines.extend(_step_lines(view.tool, view.arguments, None, None))
        else:
            lines.extend(_step_lines(view.tool, view.arguments, view.observation, view.answer))
    return "\n".join(lines)


def _final_text(step: Step) -> str | None:
    return step.action_text if step.tool is None and step.observation is None else None


def _step_lines(tool: str | None, arguments: dict | None, observation: str | None, answer: str | None) -> list[str]:
    """One line per item (a call, an output, an answer); newlines inside an item become " ⏎ "."""
    lines = []
    if tool is not None:
        lines.append(f"call {tool}: {render_arguments(arguments)}")
    if observation is not None:
        lines.append(f"output: {_strip_fences(observation)[:MAX_RENDERED_OUTPUT]}")
    if answer is not None:
        lines.append(f"answer: {answer}")
    return [" ⏎ ".join(line.strip().splitlines()) for line in lines]


def _strip_fences(text: str) -> str:
    text = text.strip()
    for opener, closer in (("```output", "```"), ("<tool_response>", "</tool_response>")):
        if text.startswith(opener) and text.endswith(closer):
            return text[len(opener) : len(text) - len(closer)].strip()
    return text


def replay_views(traj: Trajectory, upto: int | None = None) -> Iterator[StepView]:
    """The views the guard sees in the loop, in order: pre (for a call), then post, step by step.

    A generator over the trajectory's own `Step` objects, so events a caller records on `view.steps[-1].guard`
    are seen by the later views, as in the loop. With `upto=k` (a prefix of k steps) the last step is seen as the
    loop sees it before it runs: its call only, or the final message that ends the trajectory.
    """
    steps = traj.steps if upto is None else traj.steps[:upto]
    partial = Trajectory(traj.problem_id, traj.group_id, traj.prompt_ids)
    for i, step in enumerate(steps):
        partial.steps.append(step)
        for call in step.calls or ([{"name": step.tool, "arguments": step.tool_args}] if step.tool else []):
            yield pre_view(partial, call["name"], call["arguments"] or {})  # each call of the message, in order
        if upto is not None and i == len(steps) - 1 and step.observation is not None:
            return
        if step.tool is not None and step.observation is None:
            partial.answer = traj.answer
        yield post_view(partial, step)
