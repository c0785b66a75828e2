"""Drawing an eval entry's samples: n trajectories per problem, scored by the task's verifier, stored as each
batch finishes.

Sampling goes through the same AgentLoop, engine and tools as training (agentrl.train.trainer), so an eval
measures the policy the trainer trains. Problems are sampled in fixed batches; each finished batch is stored
at once (samples.jsonl), and its RNG seed derives from the entry and the batch, so an interrupted eval that is
run again continues where it stopped and ends with the samples an unbroken run would have drawn.

The text-only baseline (`tools: false`) runs the same loop with no tools and one turn: the model must answer
in its first message; a tool call it makes is not run and ends the trajectory unanswered (score 0).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from transformers.utils import logging as hf_logging

from agentrl.config import Config
from agentrl.engines import SamplingParams, build_engine
from agentrl.evals.models import ResolvedModel
from agentrl.evals.samples import SampleStore, problem_uid, trajectory_record
from agentrl.evals.spec import EvalSpec, TaskRef
from agentrl.guard import build_guard
from agentrl.models.loading import load_pretrained
from agentrl.rollout.chain import AgentLoop, StepGuard
from agentrl.tasks import Problem, Task
from agentrl.tools import Tool, build_tools

ROLLOUT_KEYS_UNUSED = {"group_size", "prompts_per_step", "sampler", "tree", "temperature"}
"""Rollout settings an eval does not read (training-only); they do not change an entry's key."""


@dataclass
class Hooks:
    """How the eval reports progress (the CLI draws a rich progress bar; tests pass nothing)."""

    entry: Callable[[str, int, int], None] = lambda label, total, done: None
    """An entry starts: its label, its problem count and how many are already stored."""
    advance: Callable[[int], None] = lambda problems: None
    log: Callable[[str], None] = lambda message: None


@dataclass
class TaskRun:
    """One task of the eval: its resolved config, its problems, and the guard of its policies (as in training)."""

    ref: TaskRef
    task: Task
    cfg: Config
    split: str
    problems: list[Problem]

    @cached_property
    def guard(self) -> StepGuard | None:
        return build_guard(self.task, self.cfg)


@dataclass
class Entry:
    task: TaskRun
    model: ResolvedModel
    model_index: int
    tools: bool
    key: str = ""
    samples: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.model.label if self.tools else f"{self.model.label} (no tools)"


def entry_key(task: TaskRun, model: ResolvedModel, tools: bool, spec: EvalSpec) -> str:
    """Names the samples an entry would draw: the same key means stored samples can be reused."""
    cfg = task.cfg
    task_code = (task.task.root / "task.py").read_bytes()
    raw = {
        "model": model.fingerprint,
        "task": task.task.spec.model_dump(mode="json"),
        "task_code": hashlib.sha256(task_code).hexdigest(),
        "split": task.split,
        "tools": tools,
        "n": spec.n,
        "batch": spec.batch_problems,
        "rollout": cfg.rollout.model_dump(mode="json", exclude=ROLLOUT_KEYS_UNUSED),
        "max_length": cfg.model.max_length,
        "sandbox": cfg.sandbox.model_dump(mode="json"),
        "guard": cfg.guard.model_dump(mode="json"),
        "temperature": cfg.eval.temperature,
        "seed": cfg.train.seed,
    }
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def _batches(problems: list[Problem], size: int) -> Iterator[list[Problem]]:
    for start in range(0, len(problems), size):
        yield problems[start : start + size]


def _batch_seed(entry: Entry, first: Problem) -> int:
    raw = f"{entry.task.cfg.train.seed}/{entry.key}/{problem_uid(first)}"
    return int(hashlib.sha256(raw.encode()).hexdigest()[:15], 16)


class Sampler:
    """Draws an entry's missing samples; loads each model and builds each task's tools only when needed."""

    def __init__(self, store: SampleStore, spec: EvalSpec, hooks: Hooks, stack: ExitStack):
        self.store, self.spec, self.hooks, self.stack = store, spec, hooks, stack
        self._model: tuple[Path, Any, Any] | None = None
        self._tools: dict[int, dict[str, Tool]] = {}
        self.sampled = 0

    def load(self, model: ResolvedModel, device: str):
        if self._model is None or self._model[0] != model.path:
            self._model = None  # free the previous model before loading the next
            self.hooks.log(f"loading {model.path}")
            hf_logging.disable_progress_bar()  # the eval's own progress bar is the one to watch
            net, tokenizer = load_pretrained(model.path, device)
            self._model = (model.path, net.eval(), tokenizer)
        return self._model[1], self._model[2]

    def tools(self, task: TaskRun) -> dict[str, Tool]:
        if id(task) not in self._tools:
            self._tools[id(task)] = build_tools(task.task, task.cfg, self.stack)
        return self._tools[id(task)]

    def run(self, entry: Entry) -> None:
        done = self.store.done(entry.key)
        problems = entry.task.problems
        stored = sum(problem_uid(p) in done for p in problems)
        self.hooks.entry(entry.label, len(problems), stored)
        if stored < len(problems):
            self._sample_missing(entry, done)
        else:
            self.hooks.advance(len(problems))
        done = self.store.done(entry.key)
        entry.samples = {problem_uid(p): done[problem_uid(p)] for p in problems}

    def _sample_missing(self, entry: Entry, done: dict[str, list[dict]]) -> None:
        cfg = entry.task.cfg
        model, tokenizer = self.load(entry.model, cfg.train.device)
        engine = build_engine(cfg.engine, model, tokenizer, cfg.model.max_length, cfg.train.seed)
        rollout = cfg.rollout if entry.tools else cfg.rollout.model_copy(update={"max_turns": 1})
        tools = self.tools(entry.task) if entry.tools else {}
        loop = AgentLoop(entry.task.task, tokenizer, tools, rollout, cfg.model.max_length, guard=entry.task.guard)
        params = SamplingParams(cfg.rollout.max_new_tokens, cfg.eval.temperature, cfg.rollout.top_p)
        policy = loop.model_policy(engine, params)
        try:
            for batch in _batches(entry.task.problems, self.spec.batch_problems):
                todo = [p for p in batch if problem_uid(p) not in done]
                if todo:
                    engine.generator.manual_seed(_batch_seed(entry, todo[0]))
                    start = time.perf_counter()
                    trajs = loop.run(todo, self.spec.n, policy, step_tag="eval/")
                    seconds = (time.perf_counter() - start) / len(trajs)
                    uids = {p.id: problem_uid(p) for p in todo}
                    grouped: dict[str, list[dict]] = {uids[p.id]: [] for p in todo}
                    for t in trajs:
                        grouped[uids[t.problem_id]].append({**trajectory_record(t, entry.tools), "seconds": seconds})
                    self.store.append_batch(entry.key, grouped)
                    self.sampled += len(trajs)
                self.hooks.advance(len(batch))
        finally:
            loop.pool.shutdown()
            engine.close()
