"""Evaluation metrics: pass@k, pass^k and bootstrap intervals over problems."""

from agentrl.evals.passk import bootstrap_ci, pass_at_k, pass_hat_k

__all__ = ["bootstrap_ci", "pass_at_k", "pass_hat_k"]
