"""Advantage shapers: adjust sequence-level advantages after the estimator, never the rewards.

A shaper takes `[B]` advantages and the batch's structure and returns `[B]` advantages; it composes on top of
any sequence-level estimator (grpo, rloo, tree_grpo). Registered by name in `SHAPERS`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor

from agentrl.algos.advantages import AdvantageInputs, _require, group_index, register_shaper


def aspo_shape(
    advantages: Tensor,
    correct: Tensor,
    first_code_pos: Tensor,
    response_len: Tensor,
    group_ids: Sequence[Hashable] | Tensor,
    delta: float = -2.0,
    k: float = 0.7,
) -> Tensor:
    """ASPO: favour early code calls, never overturning correctness (Lin and Xu, arXiv 2508.19201, Eq. 2).

    Eligible rows E are correct and called code at least once. In each group with eligible members,
    `b_i = delta * (p_i - mean_E(p)) / mean_E(L)` and `A'_i = A_i + clip(b_i, -k * |A_i|, k * |A_i|)`, with
    `p_i` the response-token index of the first code call, `L_i` the response length and means over the
    group's eligible members. Other rows keep `A_i`. Conservative: delta -2.0, k 0.7; aggressive: -2.5, 0.9.

    Args:
        advantages: `[B]` sequence-level advantages.
        correct: `[B]` bool.
        first_code_pos: `[B]` float, NaN where no code was called.
        response_len: `[B]` float response length in tokens.
        group_ids: `[B]` prompt id per row.

    Returns:
        `[B]` shaped advantages.
    """
    index, n_groups = group_index(group_ids)
    eligible = correct.bool() & ~torch.isnan(first_code_pos)
    weight = eligible.to(advantages.dtype)
    p = torch.where(eligible, first_code_pos, 0.0).to(advantages.dtype)
    length = torch.where(eligible, response_len, 0.0).to(advantages.dtype)

    count = torch.zeros(n_groups, dtype=advantages.dtype).index_add_(0, index, weight).clamp_min(1)
    mean_p = torch.zeros(n_groups, dtype=advantages.dtype).index_add_(0, index, p) / count
    mean_len = torch.zeros(n_groups, dtype=advantages.dtype).index_add_(0, index, length) / count

    b = delta * (p - mean_p[index]) / mean_len[index].clamp_min(1e-12)
    bound = k * advantages.abs()
    shaped = advantages + torch.maximum(torch.minimum(b, bound), -bound)
    return torch.where(eligible, shaped, advantages)


@register_shaper("aspo")
def _aspo(advantages: Tensor, inputs: AdvantageInputs, *, delta: float = -2.0, k: float = 0.7) -> Tensor:
    first_code_pos = _require(inputs, "first_code_pos", "aspo shaping")
    response_len = inputs.response_len
    if response_len is None:
        response_len = (inputs.token_turn >= 0).sum(dim=1).float()
    return aspo_shape(
        advantages,
        inputs.correct_or_default(),
        first_code_pos,
        response_len,
        inputs.group_ids,
        delta=delta,
        k=k,
    )
