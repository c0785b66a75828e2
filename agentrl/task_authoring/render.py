"""`agentrl tasks render`: a task's expert demonstrations exactly as the policy sees them and trains on them.

The demonstrations run through the real agent loop and tools (as cold-start SFT runs them) in the chosen format
and the chosen model's tokenizer; the result is shown as the decoded token stream, special tokens included,
with the trained spans (mask 1: what the model generates) marked, and the token counts of each turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from agentrl.guard import build_guard
from agentrl.models import train_tokenizer
from agentrl.models.loading import load_tokenizer
from agentrl.rollout.chain import AgentLoop
from agentrl.tasks import task_config
from agentrl.tools import build_tools
from agentrl.trajectory import Trajectory


@dataclass
class Rendered:
    trajectories: list[Trajectory]
    tokenizer: Any
    format: dict[str, Any]
    """The format's name and, for native, what was detected of the template."""


def render_demos(task: str, model: str | None, fmt: str | None, n: int, overrides: Sequence[str] = ()) -> Rendered:
    """`n` demonstrations of `task` (train split, seed 0) through the loop, in `fmt` (default: the run's)."""
    sets = [*overrides, *([f"model.path={model}"] if model else []), *([f"rollout.format={fmt}"] if fmt else [])]
    cfg, loaded = task_config(task, None, sets)
    if cfg.model.path:
        tokenizer = load_tokenizer(cfg.model.path)
    else:
        tokenizer = train_tokenizer(loaded.vocabulary_sample, cfg.model.vocab_size)
    with ExitStack() as stack:
        tools = build_tools(loaded, cfg, stack)
        loop = AgentLoop(loaded, tokenizer, tools, cfg.rollout, cfg.model.max_length, guard=build_guard(loaded, cfg))
        stack.callback(loop.pool.shutdown)
        problems = loaded.problems("train", n, seed=0)
        trajs = loop.run(problems, 1, loop.scripted_policy({p.id: loaded.demo(p) for p in problems}), "render/")
    describe = getattr(loop.format, "describe", None)
    return Rendered(trajs, tokenizer, {"format": loop.format.name, **(describe() if describe else {})})


def spans(traj: Trajectory, tokenizer) -> list[tuple[str, bool]]:
    """The trajectory's text in pieces, each (decoded text with special tokens, trained?), prompt first."""
    pieces = [(tokenizer.decode(traj.prompt_ids), False)]
    for step in traj.steps:
        pieces.append((tokenizer.decode(step.action_ids), True))
        if step.obs_ids:
            pieces.append((tokenizer.decode(step.obs_ids), False))
    return pieces


def turn_counts(traj: Trajectory) -> list[tuple[int, int]]:
    """(generated, fed back) tokens of each turn."""
    return [(len(s.action_ids), len(s.obs_ids)) for s in traj.steps]
