"""The policy spec: what a task's `policies:` list in task.yaml may say, validated with file and key in errors.

    policies:
      - id: no-network
        description: Never open network connections from Python code.
        severity: high
        checker: {type: python_ast, imports: [socket, urllib, http, requests]}
        action: block
        penalty: 0.2

Each entry names a checker type (see `agentrl.guard.checkers.CHECKERS`) and its settings in one mapping. A
policy whose checker names a tool the task does not have is an error, as is a duplicated id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentrl.errors import AgentRLError
from agentrl.guard.checkers import CHECKERS, CheckerSettings

Action = Literal["block", "terminate", "penalize", "log"]
Severity = Literal["low", "medium", "high", "critical"]


class PolicySpec(BaseModel):
    """One policy in task.yaml's `policies:` list."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Short unique name (letters, digits, `-_.`): shown in events, metrics and the blocked-call observation."""
    description: str = Field(min_length=1)
    """The policy in natural language: what a person reads, and what a learned checker scores against."""
    severity: Severity = "medium"
    """low, medium, high or critical: reported in audits, does not change what is done."""
    checker: dict[str, Any]
    """The checker that enforces it: `type` (python_ast, url_allowlist, regex, budget, learned) and its settings."""
    action: Action = "block"
    """On violation: block (the call is not run, or the output / answer is withheld; the model sees which policy
    blocked it), terminate (the trajectory ends), penalize (reward minus `penalty`), log (recorded only)."""
    penalty: float | None = Field(None, ge=0)
    """Subtracted from the reward per violation, whatever the action; default: guard.penalty for penalize, else 0."""


@dataclass(frozen=True)
class ParsedPolicy:
    """A validated policy: its spec and its checker's validated settings."""

    spec: PolicySpec
    settings: CheckerSettings

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def checker_type(self) -> str:
        return self.spec.checker["type"]

    def penalty(self, default: float) -> float:
        if self.spec.penalty is not None:
            return self.spec.penalty
        return default if self.spec.action == "penalize" else 0.0


def parse_policies(raw: Any, source: str, tools: Iterable[str] | None = None) -> list[ParsedPolicy]:
    """Validate a `policies:` list; `source` (e.g. "tasks/shop/task.yaml") prefixes every error.

    With `tools` (the task's tool names), a checker that names another tool is an error.
    """
    if not isinstance(raw, list):
        raise AgentRLError(f"{source}: policies: expected a list of policies (- id: ..., description: ...)")
    known_tools = None if tools is None else set(tools)
    parsed: list[ParsedPolicy] = []
    for i, item in enumerate(raw):
        key = f"policies[{i}]"
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            key += f" ({item['id']})"
        try:
            spec = PolicySpec.model_validate(item)
        except ValidationError as exc:
            raise AgentRLError(f"{source}: {_describe(exc, key)}") from None
        settings = _checker_settings(spec, source, key)
        if known_tools is not None:
            missing = [t for t in settings.referenced_tools() if t not in known_tools]
            if missing:
                have = ", ".join(sorted(known_tools)) or "none"
                raise AgentRLError(
                    f"{source}: {key}.checker: names tool(s) {', '.join(missing)} that the task does not have "
                    f"(its tools: {have}); add them under tools: or fix the policy"
                )
        if any(p.id == spec.id for p in parsed):
            raise AgentRLError(f"{source}: {key}.id: duplicate policy id {spec.id!r}; ids must be unique")
        parsed.append(ParsedPolicy(spec, settings))
    return parsed


def task_policies(task) -> list[ParsedPolicy]:
    """The validated policies of a loaded task (`agentrl.tasks.Task`)."""
    return parse_policies(task.spec.policies, str(task.root / "task.yaml"), task.spec.tools)


def _checker_settings(spec: PolicySpec, source: str, key: str) -> CheckerSettings:
    settings = dict(spec.checker)
    kind = settings.pop("type", None)
    known = ", ".join(sorted(CHECKERS))
    if kind is None:
        raise AgentRLError(f"{source}: {key}.checker.type: missing; one of: {known}")
    if kind not in CHECKERS:
        raise AgentRLError(f"{source}: {key}.checker.type: unknown checker {kind!r}; one of: {known}")
    try:
        return CHECKERS[kind].Settings.model_validate(settings)
    except ValidationError as exc:
        raise AgentRLError(f"{source}: {_describe(exc, f'{key}.checker')}") from None


def _describe(exc: ValidationError, prefix: str) -> str:
    """'policies[1] (no-net).checker.imports: Input should be a valid list'; several problems joined by '; '."""
    lines = []
    for err in exc.errors():
        key = ".".join([prefix, *(str(p) for p in err["loc"])])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {msg}")
    return "; ".join(lines)
