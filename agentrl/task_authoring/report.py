"""What `agentrl tasks validate` found: one Check per step, and the plain-text lines that explain a failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agentrl.config import Config
from agentrl.trajectory import Trajectory

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass
class Check:
    name: str
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class Report:
    root: Path
    checks: list[Check]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def text(self) -> str:
        """The report as plain text, one line per check and indented details."""
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
        lines = [f"validating {self.root}"]
        for c in self.checks:
            lines.append(f"  {marks[c.status]} {c.name:<12} {c.summary}")
            lines.extend(f"         {line}" for line in c.details)
        verdict = "valid" if self.ok else "INVALID"
        lines.append(f"task {self.root} is {verdict} ({self.seconds:.1f} s)")
        return "\n".join(lines)


def trajectory_story(traj: Trajectory, width: int = 160) -> list[str]:
    """What happened in a trajectory, a line per turn, for a failure report."""

    def short(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = []
    for i, step in enumerate(traj.steps, 1):
        line = f"  turn {i}: {short(step.action_text)!r}"
        if step.observation:
            line += f" -> {short(step.observation)!r}"
        if step.error:
            line += f" [{step.error}]"
        lines.append(line)
    return lines


def end_hint(traj: Trajectory, cfg: Config) -> str:
    hints = {
        "max_turns": f"it needs more turns than rollout.max_turns={cfg.rollout.max_turns}",
        "max_length": f"it is longer than model.max_length={cfg.model.max_length} tokens",
        "no_answer": "its last message holds no final answer (\\boxed{...} or <answer>...</answer>)",
        "guard": "a guard policy stopped it",
        "error": "a tool or guard raised",
    }
    if any(s.error == "budget" for s in traj.steps):
        return f"it makes more tool calls than rollout.max_tool_calls={cfg.rollout.max_tool_calls}"
    return hints.get(traj.done or "", "")
