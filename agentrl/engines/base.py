"""The engine protocol: token ids in, token ids and their log-probs out. Engines know nothing of tools or tasks."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass(frozen=True)
class StopRule:
    """Ends a row early, e.g. once a tool call is complete.

    `check(ids)` sees the ids generated so far in this call; it runs only after a token in `trigger_ids`,
    so an expensive check (decoding) stays off the per-token path.
    """

    trigger_ids: frozenset[int]
    check: Callable[[list[int]], bool]


@dataclass
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False


@dataclass
class Generation:
    token_ids: list[int]
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "length"  # "stop" (stop rule), "eos", or "length"


class Stream(Protocol):
    """Continuous batching: rows join a running decode batch while others decode (engines that can, e.g. `hf`,
    have `stream(params, stop)`; the agent loop's continuous schedule uses it)."""

    def add(self, tag: Hashable, prompt: Sequence[int], key: Hashable | None = None) -> None:
        """Queue a prompt; `tag` comes back with its generation, `key` names the conversation it continues."""
        ...

    def step(self) -> list[tuple[Hashable, Generation]]:
        """Decode one token for every row in the batch; return the rows that finished."""
        ...

    def __len__(self) -> int:
        """Rows queued, decoding, or finished and not yet returned."""
        ...

    def close(self) -> None:
        """Drop the rows still decoding (the caller stopped early)."""
        ...


class Engine(Protocol):
    """What the trainer and the agent loop sample from. The bundled engines subclass it and so share its
    `generate`: every prompt added to one `stream` up front and decoded to its end."""

    generator: torch.Generator
    """Seeds sampling; checkpointed with the run so a resumed run samples what an unbroken one would."""

    def stream(self, params: SamplingParams, stop: StopRule | None = None) -> Stream:
        """A continuous-batching stream: rows join while others decode (the agent loop's continuous schedule)."""
        ...

    def generate(
        self,
        prompts: Sequence[list[int]],
        params: SamplingParams,
        stop: StopRule | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> list[Generation]:
        """One generation per prompt. `keys` name the conversation each prompt continues (a prompt that extends an
        earlier one of the same key may reuse its computed prefix; an engine may ignore them)."""
        stream = self.stream(params, stop)
        for row, (prompt, key) in enumerate(zip(prompts, keys or [None] * len(prompts), strict=True)):
            stream.add(row, prompt, key)
        out: dict[int, Generation] = {}
        try:
            while stream:
                out.update(stream.step())
        finally:
            stream.close()
        return [out[row] for row in range(len(prompts))]

    def sync_weights(self, model) -> float:
        """Load the trainer's current weights (after an update); returns the seconds it took."""
        ...

    def close(self) -> None: ...


def token_budget(params: SamplingParams, max_length: int, prompt: Sequence[int]) -> int:
    """Tokens a row may generate: the turn's limit, within the model's context."""
    return max(0, min(params.max_new_tokens, max_length - len(prompt)))
