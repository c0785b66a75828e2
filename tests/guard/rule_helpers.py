"""Rule checkers called directly on hand-built views."""

from __future__ import annotations

from agentrl.guard import CHECKERS, CheckerContext, StepView
from agentrl.trajectory import Step


def checker(kind: str, **settings):
    cls = CHECKERS[kind]
    return cls(cls.Settings.model_validate(settings), CheckerContext("p", "a policy"))


def step(tool=None, args=None, observation=None, text="") -> Step:
    return Step([], [], text, "tool_call" if tool else "answer", tool=tool, tool_args=args, observation=observation)


def pre(tool: str, args: dict, before: list[Step] = ()) -> StepView:
    return StepView("pre", [*before, step(tool, args)], tool=tool, arguments=args)


def output(tool: str, args: dict, text: str) -> StepView:
    return StepView("post", [step(tool, args, text)], tool=tool, arguments=args, observation=text)


def answer(text: str) -> StepView:
    return StepView("post", [step(text=text)], answer=text)
