"""Guardrails in the loop: policies from task.yaml, checked on every tool call, output and answer of a rollout.

    guard = build_guard(task, cfg)            # None when the task has no policies or guard.enabled is false
    loop = AgentLoop(task, tokenizer, tools, cfg.rollout, max_length, guard=guard)
    metrics.update(guard_metrics(trajs))      # violations per trajectory, by policy; blocked / terminated

Rule checkers (python_ast, url_allowlist, regex, budget) and a learned checker (learned) share one interface
(`checkers.Checker`); the guard turns their findings into the policy's action. Nothing here knows the trainer.
"""

from agentrl.guard import learned as _learned  # noqa: F401  (registers the learned checker)
from agentrl.guard import rules as _rules  # noqa: F401  (registers the rule checkers)
from agentrl.guard.checkers import CHECKERS, Checker, CheckerContext, CheckerSettings, Finding, register_checker
from agentrl.guard.guard import Guard, audit, build_guard
from agentrl.guard.metrics import guard_metrics
from agentrl.guard.policy import ParsedPolicy, PolicySpec, parse_policies, task_policies
from agentrl.guard.view import StepView
from agentrl.trajectory import trajectory_from_record

__all__ = [
    "CHECKERS",
    "Checker",
    "CheckerContext",
    "CheckerSettings",
    "Finding",
    "Guard",
    "ParsedPolicy",
    "PolicySpec",
    "StepView",
    "audit",
    "build_guard",
    "guard_metrics",
    "parse_policies",
    "register_checker",
    "task_policies",
    "trajectory_from_record",
]
