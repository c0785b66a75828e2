"""The checker interface and its registry: one small protocol that rule and learned checkers share.

A checker is built once per policy from the policy's `checker:` settings and then asked, for each item under
check (a proposed call, an output, a final answer), whether the policy is violated: `check(view)` returns a
`Finding` (the rule that matched, the span that triggered it, a score) or None. The guard turns findings into
decisions (the policy's action); checkers never act, and know nothing of the loop or the trainer.

Add a checker type with `@register_checker("name")` on a class that has a pydantic `Settings` model and
`__init__(settings, context)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from agentrl.guard.view import StepView


@dataclass(frozen=True)
class Finding:
    """A checker's verdict that its policy is violated by the item under check."""

    rule: str
    """What matched, in words: "import of socket", "host evil.com is not allowed"."""
    span: str
    """The text that triggered it."""
    score: float = 1.0
    """Confidence in [0, 1]: 1.0 for rules, the model's probability for learned checkers."""


class CheckerSettings(BaseModel):
    """Base for a checker type's settings (the keys under `checker:` beside `type`)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def referenced_tools(self) -> list[str]:
        """Tools these settings name: each must be one of the task's tools."""
        return []


@dataclass(frozen=True)
class CheckerContext:
    """What a checker may know besides its settings."""

    policy_id: str
    description: str
    """The policy's natural-language text (learned checkers score against it)."""
    task_root: Path | None = None
    """Relative paths in settings (a model directory) are resolved against the task folder."""
    default_model: str | None = None
    """`guard.model` from the run config: the learned model for policies that name none."""


class Checker(Protocol):
    type: ClassVar[str]
    Settings: ClassVar[type[CheckerSettings]]

    def check(self, view: StepView) -> Finding | None:
        """The violation the item under check commits, or None."""
        ...


CHECKERS: dict[str, type[Checker]] = {}


def register_checker(name: str) -> Callable[[type], type]:
    def decorate(cls: type) -> type:
        cls.type = name
        CHECKERS[name] = cls
        return cls

    return decorate


def clip(text: str, limit: int = 120) -> str:
    """A span short enough for a table cell and an observation."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
