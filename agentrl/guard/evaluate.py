"""Checkers against the labelled benchmark: accuracy, precision, recall, F1 (micro and macro over policy families)
and CPU time per step and per check.

Each example is replayed through a `Guard` holding that one policy, exactly as in the loop (pre-check of each
call, post-check of each output and final message; a prefix ends with the pre-check of its last call). The
prediction is whether the policy fired. Rule checkers are scored on the policies a rule expresses (those with
a checker in policies.yaml); the learned checker on every policy, from its wording alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from agentrl.guard.checkers import CheckerContext
from agentrl.guard.dataset import Bench
from agentrl.guard.guard import ActivePolicy, Guard, build_checker
from agentrl.guard.learned import LearnedChecker, LearnedSettings, Scorer, forget_trajectories
from agentrl.guard.policy import ParsedPolicy, parse_policies
from agentrl.guard.view import replay_views
from agentrl.trajectory import Trajectory


@dataclass
class Scores:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    seconds: float = 0.0
    """Wall-clock seconds spent checking."""
    cpu_seconds: float = 0.0
    """CPU seconds of this process spent checking, all its threads (torch's included): what other processes on a
    shared machine do not inflate."""
    steps: int = 0
    checks: int = 0
    """Items checked: each proposed call, output and final answer, one call of the checker each, as in the loop."""
    by_policy: dict[str, Scores] = field(default_factory=dict)

    def add(self, label: int, predicted: bool, seconds: float, cpu_seconds: float, steps: int, checks: int) -> None:
        self.tp += bool(label) and predicted
        self.fp += (not label) and predicted
        self.fn += bool(label) and not predicted
        self.tn += (not label) and not predicted
        self.seconds += seconds
        self.cpu_seconds += cpu_seconds
        self.steps += steps
        self.checks += checks

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n if self.n else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else float("nan")

    @property
    def macro_f1(self) -> float:
        """The mean F1 of the policy families (those with any positive or predicted example)."""
        f1s = [s.f1 for s in self.by_policy.values() if s.tp + s.fp + s.fn]
        return sum(f1s) / len(f1s) if f1s else float("nan")

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.seconds / self.steps if self.steps else float("nan")

    @property
    def cpu_ms_per_step(self) -> float:
        return 1000 * self.cpu_seconds / self.steps if self.steps else float("nan")

    @property
    def cpu_ms_per_check(self) -> float:
        return 1000 * self.cpu_seconds / self.checks if self.checks else float("nan")

    def as_dict(self) -> dict[str, float]:
        keys = ("n", "accuracy", "precision", "recall", "f1", "macro_f1", "ms_per_step", "cpu_ms_per_step",
                "cpu_ms_per_check")  # fmt: skip
        return {k: getattr(self, k) for k in keys}


def _policy(policy_id: str, checker: dict, description: str = "-") -> ParsedPolicy:
    entry = {"id": policy_id, "description": description, "checker": checker, "action": "log"}
    return parse_policies([entry], "policies.yaml")[0]


def _fired(guard: Guard, traj: Trajectory, prefix: int | None) -> tuple[bool, float, float, int, int]:
    """Whether the guard fires on the trajectory (or its prefix); wall and CPU seconds; the steps and the items
    it checked.

    A step is one turn: the pre-check of its call (if any) and the post-check of its output or final message.
    Each item is checked on its own, one (policy, prefix) pair per checker call, as the loop checks them.
    """
    start, cpu = time.perf_counter(), time.process_time()
    replayed = guard.replay(traj, prefix)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    fired = any(e.error is None for e in replayed.guard_events)
    checks = sum(1 for _ in replay_views(traj, prefix))
    return fired, seconds, cpu_seconds, len(replayed.steps) if prefix is None else prefix, checks


def evaluate_rules(bench: Bench, split: str) -> dict[str, Scores]:
    """Rule checkers on rule-expressible policies: {"whole": Scores, "prefix": Scores}."""
    guards = {
        pid: Guard([ActivePolicy(p, build_checker(p), 0.0)])
        for pid, entry in bench.policies.items()
        if entry.get("checker") and (p := _policy(pid, entry["checker"]))
    }
    rows = [r for r in bench.rows[split] if r["policy_id"] in guards]
    return _score(rows, bench, lambda row: guards[row["policy_id"]])


def evaluate_learned(bench: Bench, split: str, scorer: Scorer, threshold: float | None = None) -> dict[str, Scores]:
    """The learned checker on every policy, each example scored against its own wording."""
    settings = LearnedSettings(threshold=threshold)

    def guard_for(row: dict) -> Guard:
        policy = _policy(row["policy_id"], {"type": "learned"}, row["policy"])
        checker = LearnedChecker(settings, CheckerContext(row["policy_id"], row["policy"]), scorer)
        return Guard([ActivePolicy(policy, checker, 0.0)])

    return _score(bench.rows[split], bench, guard_for)


def _score(rows: Iterable[dict], bench: Bench, guard_for) -> dict[str, Scores]:
    """Each row replayed as a new trajectory: its lines and prefixes are read again (only policies stay cached,
    as in a run), so the time is what checking it costs in the loop."""
    out = {"whole": Scores(), "prefix": Scores()}
    for row in rows:
        forget_trajectories()
        fired, *cost = _fired(guard_for(row), bench.episodes[row["episode"]], row["prefix"])
        mode = "whole" if row["prefix"] is None else "prefix"
        out[mode].add(row["label"], fired, *cost)
        out[mode].by_policy.setdefault(row["family"], Scores()).add(row["label"], fired, *cost)
    return out
