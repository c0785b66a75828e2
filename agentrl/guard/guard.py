"""The in-loop guard: runs every policy's checker on each proposed call (pre) and each output or answer (post).

It implements the loop's `StepGuard` protocol (agentrl.rollout.chain): it returns `GuardEvent`s and the loop
applies their actions. It never raises: a checker that raises becomes an event with `error` set, handled by
`guard.fail_mode` (open: recorded, no action; closed: the item is blocked). A policy fires at most once per
step: a call flagged before it runs is not flagged again on its output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from agentrl.config import Config, GuardConfig
from agentrl.guard.checkers import CHECKERS, Checker, CheckerContext
from agentrl.guard.policy import ParsedPolicy, task_policies
from agentrl.guard.view import StepView, post_view, pre_view, replay_views
from agentrl.trajectory import GuardEvent, Step, Trajectory, trajectory_from_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivePolicy:
    """A policy ready to check: its spec, its checker, and the penalty it carries."""

    policy: ParsedPolicy
    checker: Checker
    penalty: float

    @property
    def id(self) -> str:
        return self.policy.id


def build_checker(policy: ParsedPolicy, task_root=None, default_model: str | None = None) -> Checker:
    context = CheckerContext(policy.id, policy.spec.description, task_root, default_model)
    return CHECKERS[policy.checker_type](policy.settings, context)


class Guard:
    """Checks steps against a list of policies; see the module docstring."""

    def __init__(self, policies: Sequence[ActivePolicy], fail_mode: str = "open"):
        self.policies = list(policies)
        self.fail_mode = fail_mode
        self._warned: set[str] = set()

    @classmethod
    def from_policies(cls, policies: Sequence[ParsedPolicy], cfg: GuardConfig, task_root=None) -> Guard:
        active = [ActivePolicy(p, build_checker(p, task_root, cfg.model), p.penalty(cfg.penalty)) for p in policies]
        return cls(active, cfg.fail_mode)

    # --- the StepGuard protocol ---
    def pre_check(self, traj: Trajectory, call) -> list[GuardEvent]:
        return self._safely(lambda: pre_view(traj, call.name, call.arguments), "pre")

    def post_check(self, traj: Trajectory, step: Step) -> list[GuardEvent]:
        return self._safely(lambda: post_view(traj, step), "post")

    # --- checking ---
    def check(self, view: StepView) -> list[GuardEvent]:
        """The events of every policy the item under check violates (or whose checker failed)."""
        fired = {e.policy for e in view.steps[-1].guard} if view.steps else set()
        events = []
        for p in self.policies:
            if p.id in fired:
                continue
            try:
                finding = p.checker.check(view)
            except Exception as exc:  # a broken checker is an event, never a crashed rollout
                events.append(self._failure(p.id, p.checker.type, view.phase, exc))
                continue
            if finding is not None:
                events.append(
                    GuardEvent(
                        policy=p.id,
                        action=p.policy.spec.action,
                        phase=view.phase,
                        checker=p.checker.type,
                        score=finding.score,
                        span=finding.span,
                        message=finding.rule,
                        penalty=p.penalty,
                    )
                )
        return events

    def replay(self, traj: Trajectory, upto: int | None = None) -> Trajectory:
        """A copy of `traj` (its first `upto` steps) with the events this guard raises, as if it ran in the loop.

        The copy's steps start with no events; the outputs are the recorded ones (an audit does not re-run tools).
        """
        steps = [Step(**{**s.__dict__, "guard": []}) for s in traj.steps]
        copy = Trajectory(traj.problem_id, traj.group_id, traj.prompt_ids, steps, answer=traj.answer, done=traj.done)
        for view in replay_views(copy, upto):
            events = self.check(view)
            view.steps[-1].guard.extend(events)
            copy.penalty += sum(e.penalty for e in events)
        return copy

    def _safely(self, make_view, phase: str) -> list[GuardEvent]:
        try:
            return self.check(make_view())
        except Exception as exc:
            return [self._failure("guard", "guard", phase, exc)]

    def _failure(self, policy: str, checker: str, phase: str, exc: Exception) -> GuardEvent:
        error = f"{type(exc).__name__}: {exc}"
        if policy not in self._warned:
            self._warned.add(policy)
            log.warning("guard: checker of policy %s raised %s (fail-%s)", policy, error, self.fail_mode)
        closed = self.fail_mode == "closed"
        return GuardEvent(
            policy=policy,
            action="block" if closed else "log",
            phase=phase,
            checker=checker,
            score=0.0,
            message=f"checker failed ({'blocked: fail-closed' if closed else 'allowed: fail-open'})",
            error=error,
        )


def build_guard(task, cfg: Config) -> Guard | None:
    """The guard for a task's policies, or None when it has none or `guard.enabled` is false."""
    if not cfg.guard.enabled or not task.spec.policies:
        return None
    return Guard.from_policies(task_policies(task), cfg.guard, task.root)


def audit(guard: Guard, rows: Sequence[dict]) -> list[Trajectory]:
    """Re-check saved rollouts (`Trajectory.to_record()` rows) with `guard`; the copies carry its events."""
    return [guard.replay(trajectory_from_record(row)) for row in rows]
