"""Trajectories: the token ids the model generated and the observation ids fed back, with masks and log-probs.

Token ids are the truth; text is derived. A trajectory is never re-tokenized to be trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Step:
    """One agent turn: the model's message (ids + log-probs) and the observation fed back after it."""

    action_ids: list[int]
    action_logprobs: list[float]
    action_text: str
    finish: str
    """Why generation stopped: tool_call, answer, parse_error, length, or budget."""
    tool: str | None = None
    tool_args: dict[str, Any] | None = None
    observation: str | None = None
    obs_ids: list[int] = field(default_factory=list)
    error: str | None = None
    """tool_error, timeout, parse_error, sandbox_died … when the step failed."""
    seconds: float = 0.0


@dataclass
class Trajectory:
    problem_id: str
    group_id: str
    """The prompt this trajectory answers in this step: advantages are normalised within a group."""
    prompt_ids: list[int]
    steps: list[Step] = field(default_factory=list)
    answer: str | None = None
    reward: float = 0.0
    done: str = ""
    """Why it ended: answer, max_turns, max_length, no_answer, error."""

    @property
    def response_ids(self) -> list[int]:
        return [t for s in self.steps for t in (*s.action_ids, *s.obs_ids)]

    @property
    def response_mask(self) -> list[int]:
        """1 on model-generated tokens, 0 on observation tokens (never trained on)."""
        return [m for s in self.steps for m in (*[1] * len(s.action_ids), *[0] * len(s.obs_ids))]

    @property
    def response_logprobs(self) -> list[float]:
        return [x for s in self.steps for x in (*s.action_logprobs, *[0.0] * len(s.obs_ids))]

    @property
    def token_turn(self) -> list[int]:
        """Turn index of each response token."""
        return [j for j, s in enumerate(self.steps) for _ in range(len(s.action_ids) + len(s.obs_ids))]

    @property
    def context_ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids

    @property
    def num_tool_calls(self) -> int:
        return sum(s.tool is not None for s in self.steps)

    @property
    def num_generated(self) -> int:
        return sum(len(s.action_ids) for s in self.steps)

    def first_tool_position(self, tool: str = "python") -> float:
        """Response-token index where the first call of `tool` ends (ASPO's p_i); NaN if it was never called."""
        pos = 0
        for s in self.steps:
            pos += len(s.action_ids)
            if s.tool == tool:
                return float(pos)
            pos += len(s.obs_ids)
        return float("nan")

    def to_record(self) -> dict[str, Any]:
        return asdict(self)
