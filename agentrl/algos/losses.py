"""The policy loss: PPO clip on the response tokens, with verl's aggregation modes and KL estimators.

Pure tensor code: it never runs a model. Observation and padding tokens (`response_mask == 0`) contribute
nothing to the loss, its gradient or its metrics.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from agentrl.errors import AgentRLError

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")
KL_TYPES = ("k1", "k2", "k3", "low_var_kl")


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of `x` where `mask` is set (masked entries may hold anything finite or not)."""
    selected = torch.where(mask.bool(), x, 0.0)
    return selected.sum() if dim is None else selected.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` over the entries where `mask` is set; 0 where nothing is set."""
    count = mask.bool().sum() if dim is None else mask.bool().sum(dim=dim)
    return masked_sum(x, mask, dim) / count.clamp_min(1)


def agg_loss(loss_mat: Tensor, mask: Tensor, agg: str = "token-mean") -> Tensor:
    """Aggregate a `[B, T]` per-token loss to a scalar, as verl's `agg_loss` (one data-parallel rank).

    - `token-mean`: mean over all response tokens of the batch (long sequences weigh more; DAPO).
    - `seq-mean-token-sum`: sum over each sequence's tokens, then mean over sequences (Dr. GRPO-like).
    - `seq-mean-token-mean`: mean over each sequence's tokens, then mean over sequences (original GRPO).
    Sequences with no response token are left out of the sequence mean.
    """
    mask = mask.bool()
    if agg == "token-mean":
        return masked_mean(loss_mat, mask)
    has_tokens = mask.any(dim=-1)
    if agg == "seq-mean-token-sum":
        return masked_mean(masked_sum(loss_mat, mask, dim=-1), has_tokens)
    if agg == "seq-mean-token-mean":
        return masked_mean(masked_mean(loss_mat, mask, dim=-1), has_tokens)
    raise AgentRLError(f"unknown loss aggregation {agg!r}; valid: {list(AGG_MODES)}")


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, kl_type: str = "k3") -> Tensor:
    """Per-token KL estimate of the policy from the reference (Schulman, "Approximating KL divergence").

    - `k1`: `log p - log p_ref`.
    - `k2`: `0.5 * (log p - log p_ref)^2`.
    - `k3` (verl `low_var_kl`): `exp(log p_ref - log p) - (log p_ref - log p) - 1`, with the log-ratio clamped
      to [-20, 20] and the result to [-10, 10] as verl does.
    """
    if kl_type == "k1":
        return logprobs - ref_logprobs
    if kl_type == "k2":
        return 0.5 * (logprobs - ref_logprobs).square()
    if kl_type in ("k3", "low_var_kl"):
        log_ratio = torch.clamp(ref_logprobs - logprobs, min=-20.0, max=20.0)
        return torch.clamp(log_ratio.exp() - log_ratio - 1, min=-10.0, max=10.0)
    raise AgentRLError(f"unknown kl_type {kl_type!r}; valid: {list(KL_TYPES)}")


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = 3.0,
    agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = "token-mean",
    ref_logprobs: Tensor | None = None,
    kl_coef: float = 0.0,
    kl_type: str = "k3",
    entropy: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO-clip policy loss with asymmetric clip ranges (DAPO's clip-higher) and dual clip.

    Per token, with `ratio = exp(logprobs - old_logprobs)`:
    `pg_loss1 = -A * ratio`, `pg_loss2 = -A * clip(ratio, 1 - clip_low, 1 + clip_high)`,
    `clipped = max(pg_loss1, pg_loss2)` (Schulman et al. 2017, Eq. 7); for `A < 0` the dual clip
    (Ye et al. 2020, arXiv 1912.09729) bounds it by `pg_loss3 = -A * dual_clip`. Aggregated by `agg`, plus
    `kl_coef * agg(KL(policy || ref))` when `ref_logprobs` is given (Tree-GRPO: k3, 0.001).

    Args:
        logprobs: `[B, T]` log-probs of the taken tokens under the current policy (with gradient).
        old_logprobs: `[B, T]` log-probs under the policy that sampled them.
        advantages: `[B, T]` per-token advantages.
        response_mask: `[B, T]` 1 on model-generated tokens, 0 on observations and padding.
        ref_logprobs: `[B, T]` log-probs under the reference policy, or None.
        entropy: `[B, T]` per-token entropy of the current policy, logged only.

    Returns:
        `(loss, metrics)`: the scalar loss and floats `loss`, `pg_loss`, `clipfrac`, `clipfrac_lower`,
        `approx_kl`, `adv_mean`, `adv_std`, plus `kl` (with `ref_logprobs`) and `entropy` (with `entropy`).
    """
    mask = response_mask.bool()
    advantages = advantages.detach()

    # ratio of new to old policy, log clamped as verl does
    log_ratio = torch.clamp(logprobs - old_logprobs.detach(), min=-20.0, max=20.0)
    ratio = log_ratio.exp()
    approx_kl = masked_mean(-log_ratio, mask)  # verl ppo_kl: k1 estimate of KL(old || new)

    # clipped surrogate objective
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    clipped = torch.maximum(pg_loss1, pg_loss2)
    clipfrac = masked_mean((pg_loss2 > pg_loss1).float(), mask)

    # dual clip: for negative advantages, the loss never exceeds -A * c
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise AgentRLError(f"dual_clip must be > 1 (got {dual_clip}); use None to disable it")
        pg_loss3 = -advantages * dual_clip
        dual_clipped = torch.minimum(pg_loss3, clipped)
        clipfrac_lower = masked_mean(((clipped > pg_loss3) & (advantages < 0)).float(), mask)
        pg_losses = torch.where(advantages < 0, dual_clipped, clipped)
    else:
        clipfrac_lower = torch.zeros(())
        pg_losses = clipped
    pg_loss = agg_loss(pg_losses, mask, agg)
    loss = pg_loss

    # reference KL as a loss term
    metrics: dict[str, float] = {}
    if ref_logprobs is not None:
        kl = agg_loss(kl_penalty(logprobs, ref_logprobs.detach(), kl_type), mask, agg)
        loss = loss + kl_coef * kl
        metrics["kl"] = kl.item()
    elif kl_coef != 0:
        raise AgentRLError(f"kl_coef is {kl_coef} but no ref_logprobs were given; pass them or set kl_coef 0")

    # diagnostics
    if entropy is not None:
        metrics["entropy"] = masked_mean(entropy.detach(), mask).item()
    adv_mean = masked_mean(advantages, mask)
    adv_var = masked_mean((advantages - adv_mean).square(), mask)
    metrics.update(
        loss=loss.item(),
        pg_loss=pg_loss.item(),
        clipfrac=clipfrac.item(),
        clipfrac_lower=clipfrac_lower.item(),
        approx_kl=approx_kl.item(),
        adv_mean=adv_mean.item(),
        adv_std=adv_var.sqrt().item(),
    )
    return loss, metrics
