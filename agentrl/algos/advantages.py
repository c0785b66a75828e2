"""Advantage estimators: GRPO, RLOO, Tree-GRPO and turn-level GTPO, plus the registry the trainer calls.

Each estimator is a pure function of tensors and group / tree / turn structure, written as the equation of the
paper its docstring cites (docs/algorithms.md lists them). Nothing here calls a model, a sandbox or the trainer.

The trainer calls one entry point, `compute_advantages(inputs, estimator, shaping, **params)`, which picks an
estimator from `ADVANTAGE_ESTIMATORS`, applies the shapers named in `shaping` (from `SHAPERS`, e.g. ASPO) and
spreads the result over the response tokens. A new estimator is one decorated function; the trainer never
changes.

Group ids (prompt ids, tree ids) are arbitrary hashables; `group_index` maps them once to contiguous ints and
every statistic is a scatter over that index, never a Python loop over rows or tokens.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from agentrl.algos.code_similarity import CharNgramTfidf, cosine_similarity
from agentrl.errors import AgentRLError

# ---------------------------------------------------------------------------------------------------------
# Group structure
# ---------------------------------------------------------------------------------------------------------


def group_index(group_ids: Sequence[Hashable] | Tensor | np.ndarray) -> tuple[Tensor, int]:
    """Map arbitrary hashable group ids to contiguous ints.

    Args:
        group_ids: `[B]` ids (a list of hashables, a numpy array, or an integer tensor).

    Returns:
        `(index, n_groups)`: `index` is a `[B]` long tensor with values in `0..n_groups-1`, numbered in order
        of first appearance for sequences (sorted order for tensors).
    """
    if isinstance(group_ids, Tensor):
        if group_ids.dtype.is_floating_point:
            raise AgentRLError("group ids must be integers or hashables, not a float tensor")
        _, index = torch.unique(group_ids.flatten(), return_inverse=True)
        return index.long(), int(index.max()) + 1 if index.numel() else 0
    ids = group_ids.tolist() if isinstance(group_ids, np.ndarray) else list(group_ids)
    ids = [g.item() if isinstance(g, Tensor) else g for g in ids]  # tensors hash by identity, not value
    number: dict[Hashable, int] = {}
    index = torch.tensor([number.setdefault(g, len(number)) for g in ids], dtype=torch.long)
    return index, len(number)


def _float(x: Tensor) -> Tensor:
    """`x` as a floating tensor, keeping float64 where given."""
    return x if x.is_floating_point() else x.float()


SPREAD_TOLERANCE = 1e-6
"""A group whose values spread less than this (times their magnitude, at least 1) counts as all equal: its members
get an advantage of exactly 0. Without it, round-off (rewards of 0.1 + 0.2 and 0.3, or z-scores taken again)
leaves a std of ~1e-8 that the eps of the denominator turns into advantages of ~0.01."""


def _flat(values: Tensor, index: Tensor, n_groups: int) -> Tensor:
    """`[N]` bool: the member's group spreads less than SPREAD_TOLERANCE."""
    hi = torch.full((n_groups,), -torch.inf, dtype=values.dtype).scatter_reduce(0, index, values, "amax")
    lo = torch.full((n_groups,), torch.inf, dtype=values.dtype).scatter_reduce(0, index, values, "amin")
    scale = torch.maximum(hi.abs(), lo.abs()).clamp_min(1.0)
    return ((hi - lo) <= SPREAD_TOLERANCE * scale)[index]


def _group_zscore(
    values: Tensor, index: Tensor, n_groups: int, *, norm_by_std: bool = True, eps: float = 1e-6
) -> Tensor:
    """`(x - mean_g(x)) / (std_g(x) + eps)` per group, or `x - mean_g(x)` without std normalisation; exactly 0 in
    a group of equal values (see SPREAD_TOLERANCE). Statistics in float64, the result in `values`' dtype.

    `std` is the unbiased sample std (`torch.std`, correction 1). A group of one has mean 0 and std 1, so
    its member keeps `x / (1 + eps)`: verl's rule (`compute_grpo_outcome_advantage`).

    Args:
        values: `[N]` float.
        index: `[N]` long group index in `0..n_groups-1`.
    """
    x = values.double()
    count = torch.zeros(n_groups, dtype=x.dtype).index_add_(0, index, torch.ones_like(x))
    total = torch.zeros(n_groups, dtype=x.dtype).index_add_(0, index, x)
    mean = total / count.clamp_min(1)
    sq = torch.zeros(n_groups, dtype=x.dtype).index_add_(0, index, (x - mean[index]).square())
    std = (sq / (count - 1).clamp_min(1)).sqrt()
    single = count[index] == 1
    mean_i = torch.where(single, torch.zeros_like(x), mean[index])
    std_i = torch.where(single, torch.ones_like(x), std[index])
    centred = torch.where(_flat(x, index, n_groups) & ~single, 0.0, x - mean_i)
    return (centred / (std_i + eps) if norm_by_std else centred).to(values.dtype)


# ---------------------------------------------------------------------------------------------------------
# Sequence-level estimators: one advantage per trajectory
# ---------------------------------------------------------------------------------------------------------


def grpo_advantages(
    rewards: Tensor, group_ids: Sequence[Hashable] | Tensor, norm_by_std: bool = True, eps: float = 1e-6
) -> Tensor:
    """GRPO outcome advantage (Shao et al. 2024; verl `compute_grpo_outcome_advantage`).

    `A_i = (r_i - mean_g(r)) / (std_g(r) + eps)`, or `A_i = r_i - mean_g(r)` when `norm_by_std` is False
    (Dr. GRPO). A group of one has mean 0 and std 1.

    Args:
        rewards: `[B]` float outcome reward per trajectory.
        group_ids: `[B]` prompt id per trajectory (any hashable).

    Returns:
        `[B]` advantages.
    """
    index, n_groups = group_index(group_ids)
    return _group_zscore(_float(rewards), index, n_groups, norm_by_std=norm_by_std, eps=eps)


def rloo_advantages(rewards: Tensor, group_ids: Sequence[Hashable] | Tensor) -> Tensor:
    """RLOO: reward minus the mean of the rest of its group (Ahmadian et al. 2024, arXiv 2402.14740).

    `A_i = r_i - (1 / (n - 1)) * sum_{j != i} r_j = n / (n - 1) * (r_i - mean_g(r))`; a group of one keeps
    `A_i = r_i` (verl `compute_rloo_outcome_advantage`), a group of equal rewards gets exactly 0.

    Args:
        rewards: `[B]` float outcome reward per trajectory.
        group_ids: `[B]` prompt id per trajectory.

    Returns:
        `[B]` advantages.
    """
    x = _float(rewards).double()
    index, n_groups = group_index(group_ids)
    count = torch.zeros(n_groups, dtype=x.dtype).index_add_(0, index, torch.ones_like(x))[index]
    total = torch.zeros(n_groups, dtype=x.dtype).index_add_(0, index, x)[index]
    leave_one_out_mean = (total - x) / (count - 1).clamp_min(1)
    advantages = torch.where(_flat(x, index, n_groups), 0.0, x - leave_one_out_mean)
    return torch.where(count > 1, advantages, x).to(_float(rewards).dtype)


def tree_grpo_advantages(
    rewards: Tensor,
    prompt_ids: Sequence[Hashable] | Tensor,
    tree_ids: Sequence[Hashable] | Tensor,
    combine: Literal["sum", "sequential"] = "sum",
    eps: float = 1e-6,
) -> Tensor:
    """Tree-GRPO advantage over the kept leaves (Ji et al. 2025, arXiv 2509.21240).

    `combine="sum"` (the paper; official estimator `tree`): `A_i = A_inter(i) + A_intra(i)`, where
    `A_inter` is GRPO over the prompt's leaves (all its trees) and `A_intra` is GRPO over the leaves of
    i's own tree. `combine="sequential"` (official `tree_2norm`): GRPO by prompt, then those values
    GRPO-normalised again by tree (equal to intra-only whenever a tree has 2+ leaves).

    Args:
        rewards: `[B]` float outcome reward per leaf trajectory.
        prompt_ids: `[B]` prompt id per leaf.
        tree_ids: `[B]` tree id per leaf, unique across prompts.

    Returns:
        `[B]` advantages; each leaf carries its value on all of its response tokens.
    """
    prompt_index, n_prompts = group_index(prompt_ids)
    tree_index, n_trees = group_index(tree_ids)
    lo = torch.full((n_trees,), n_prompts).scatter_reduce(0, tree_index, prompt_index, "amin")
    hi = torch.full((n_trees,), -1).scatter_reduce(0, tree_index, prompt_index, "amax")
    if bool((lo != hi).any()):
        raise AgentRLError("tree_ids must be unique across prompts: a tree id appears under two prompt ids")
    rewards = _float(rewards)
    inter = _group_zscore(rewards, prompt_index, n_prompts, eps=eps)
    if combine == "sum":
        intra = _group_zscore(rewards, tree_index, n_trees, eps=eps)
        return inter + intra
    if combine == "sequential":
        return _group_zscore(inter, tree_index, n_trees, eps=eps)
    raise AgentRLError(f"unknown tree_grpo combine {combine!r}; use 'sum' or 'sequential'")


# ---------------------------------------------------------------------------------------------------------
# GTPO, turn level (Ding et al. 2025, arXiv 2511.14846)
# ---------------------------------------------------------------------------------------------------------


def gtpo_turn_rewards(
    outcome: Tensor, turn_mask: Tensor, format_errors: Tensor | None = None, format_penalty: float = -0.1
) -> Tensor:
    """GTPO turn rewards, Eq. 5: `r_ij = r_acc_ij + r_fmt_ij`.

    `r_acc` is the trajectory's outcome value on its last turn and 0 on earlier turns; `r_fmt` is
    `format_penalty` on every turn whose tool call could not be parsed or broke the task's format.

    Args:
        outcome: `[B]` float `r_acc` of each trajectory's last turn (1 correct, 0 wrong, or the
            self-supervised shaped value of `gtpo_similarity_outcome` for wrong ones).
        turn_mask: `[B, J]` bool, True on real turns (a prefix of each row).
        format_errors: `[B, J]` bool, True on turns with a format error; None for none.

    Returns:
        `[B, J]` turn rewards, 0 on padded turns.
    """
    turn_mask = turn_mask.bool()
    n_rows, n_turns = turn_mask.shape
    turn_number = torch.arange(n_turns).expand(n_rows, n_turns)
    last = torch.where(turn_mask, turn_number, -1).amax(dim=1)  # [B], -1 for a row without turns
    r_acc = torch.where(turn_number == last[:, None], _float(outcome)[:, None], 0.0)
    r_fmt = torch.zeros_like(r_acc)
    if format_errors is not None:
        r_fmt = format_penalty * format_errors.to(r_acc.dtype)
    return torch.where(turn_mask, r_acc + r_fmt, 0.0)


def gtpo_similarity_outcome(
    rewards: Tensor,
    correct: Tensor,
    codes: Sequence[str],
    group_ids: Sequence[Hashable] | Tensor,
    alpha: float = 0.5,
    embedder: Callable[[Sequence[str]], Tensor] | None = None,
) -> Tensor:
    """GTPO self-supervised reward shaping (section 3.4): the last-turn `r_acc` of each trajectory.

    A wrong trajectory i in a group whose set P of correct trajectories is non-empty gets
    `alpha * mean_{p in P} max(0, sim(c_i, c_p))`, where `c` is all the code a trajectory ran, concatenated,
    and `sim` the cosine similarity of code embeddings. Every other trajectory keeps its reward.

    Args:
        rewards: `[B]` float outcome reward.
        correct: `[B]` bool.
        codes: `B` strings, the concatenated code of each trajectory ("" if it ran none).
        group_ids: `[B]` prompt id per trajectory.
        embedder: texts -> `[B, D]` embeddings (dense or sparse); default TF-IDF over character n-grams
            (`agentrl.algos.code_similarity.CharNgramTfidf`).

    Returns:
        `[B]` float `r_acc`.
    """
    if len(codes) != rewards.shape[0]:
        raise AgentRLError(f"codes has {len(codes)} entries for {rewards.shape[0]} trajectories")
    correct = correct.bool()
    index, _ = group_index(group_ids)
    same_group = index[:, None] == index[None, :]
    reference = same_group & correct[None, :]  # [B, B]: p is a correct member of i's group
    shaped = (~correct) & reference.any(dim=1)
    if not bool(shaped.any()):
        return _float(rewards)
    sim = cosine_similarity((embedder or CharNgramTfidf())(codes)).clamp_min(0)
    mean_sim = (sim * reference).sum(dim=1) / reference.sum(dim=1).clamp_min(1)
    return torch.where(shaped, alpha * mean_sim, _float(rewards))


def gtpo_advantages(
    turn_rewards: Tensor,
    turn_mask: Tensor,
    group_ids: Sequence[Hashable] | Tensor,
    gamma: float = 0.9,
    scope: Literal["group", "batch"] = "group",
    eps: float = 1e-6,
) -> Tensor:
    """GTPO turn-level advantage: discounted returns (Eq. 6) normalised over the group's turns (Eq. 7).

    `R_ij = sum_{m=j..J_i} gamma^(m-j) * r_im`, then `A_ij = (R_ij - mean(R)) / (std(R) + eps)` over all
    turns of all trajectories in i's group (`scope="group"`; a set of one: mean 0, std 1) or of the whole
    batch (`scope="batch"`).

    Args:
        turn_rewards: `[B, J]` float turn rewards (Eq. 5, see `gtpo_turn_rewards`).
        turn_mask: `[B, J]` bool, True on real turns (a prefix of each row).
        group_ids: `[B]` prompt id per trajectory.

    Returns:
        `[B, J]` advantages, 0 on padded turns.
    """
    turn_mask = turn_mask.bool()
    n_rows, n_turns = turn_mask.shape
    rewards = torch.where(turn_mask, _float(turn_rewards), 0.0)
    # Eq. 6 as one matmul: R[:, j] = sum_m r[:, m] * gamma^(m - j) for m >= j.
    lag = torch.arange(n_turns)[:, None] - torch.arange(n_turns)[None, :]  # [m, j] = m - j
    discount = torch.where(lag >= 0, gamma ** lag.clamp_min(0).to(rewards.dtype), 0.0)
    returns = rewards @ discount
    if scope == "group":
        row_index, n_groups = group_index(group_ids)
    elif scope == "batch":
        row_index, n_groups = torch.zeros(n_rows, dtype=torch.long), 1
    else:
        raise AgentRLError(f"unknown gtpo scope {scope!r}; use 'group' or 'batch'")
    turn_index = row_index[:, None].expand(n_rows, n_turns)
    advantages = torch.zeros_like(returns)
    advantages[turn_mask] = _group_zscore(returns[turn_mask], turn_index[turn_mask], n_groups, eps=eps)
    return advantages


# ---------------------------------------------------------------------------------------------------------
# Registry and the trainer's one entry point
# ---------------------------------------------------------------------------------------------------------


@dataclass
class AdvantageInputs:
    """What the trainer knows about a batch: one row per trajectory (leaf), B rows.

    T is the padded response token length (model tokens and observations), J the most turns of any row.
    """

    rewards: Tensor
    """`[B]` float outcome reward."""
    group_ids: Sequence[Hashable]
    """`[B]` prompt id per row."""
    response_mask: Tensor
    """`[B, T]` 1 on model-generated tokens, 0 on observations and padding."""
    token_turn: Tensor
    """`[B, T]` long, index of the turn each response token belongs to (-1 = padding)."""
    tree_ids: Sequence[Hashable] | None = None
    """`[B]` tree id per leaf, unique across prompts (tree_grpo)."""
    turn_rewards: Tensor | None = None
    """`[B, J]` float turn rewards (gtpo); None builds them from rewards, format_errors and codes (Eq. 5)."""
    turn_mask: Tensor | None = None
    """`[B, J]` bool, True on real turns; None derives it from token_turn."""
    format_errors: Tensor | None = None
    """`[B, J]` bool, True on turns whose tool call failed to parse or broke the format (gtpo)."""
    codes: Sequence[str] | None = None
    """`B` strings, all code each trajectory ran, concatenated (gtpo self-supervised shaping)."""
    correct: Tensor | None = None
    """`[B]` bool; None means `rewards > 0`."""
    first_code_pos: Tensor | None = None
    """`[B]` float response-token index of the first code call, NaN if none (aspo)."""
    response_len: Tensor | None = None
    """`[B]` float response length in tokens; None counts the non-padding tokens of token_turn (aspo)."""

    def correct_or_default(self) -> Tensor:
        return self.correct.bool() if self.correct is not None else self.rewards > 0

    def turn_mask_or_default(self) -> Tensor:
        if self.turn_mask is not None:
            return self.turn_mask.bool()
        valid = self.token_turn >= 0
        n_turns = int(self.token_turn.max()) + 1 if bool(valid.any()) else 1
        mask = torch.zeros(self.token_turn.shape[0], n_turns, dtype=torch.bool)
        rows = torch.arange(self.token_turn.shape[0])[:, None].expand_as(self.token_turn)
        mask[rows[valid], self.token_turn[valid]] = True
        return mask


Estimator = Callable[..., Tensor]
Shaper = Callable[..., Tensor]

ADVANTAGE_ESTIMATORS: dict[str, Estimator] = {}
"""name -> `fn(inputs: AdvantageInputs, **params) -> Tensor`: [B] at sequence level, [B, J] at turn level."""
ESTIMATOR_LEVEL: dict[str, Literal["sequence", "turn"]] = {}
"""name -> "sequence" (one advantage per row, shapers compose) or "turn" (one per turn, [B, J])."""
ESTIMATOR_DEFAULTS: dict[str, dict[str, Any]] = {}
"""name -> the estimator's parameters and their defaults (the papers' values)."""
SHAPERS: dict[str, Shaper] = {}
"""name -> `fn(advantages: Tensor[B], inputs: AdvantageInputs, **params) -> Tensor[B]`."""
SHAPER_DEFAULTS: dict[str, dict[str, Any]] = {}
"""name -> the shaper's parameters and their defaults."""


def _keyword_defaults(fn: Callable) -> dict[str, Any]:
    return {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def register_advantage(name: str, level: Literal["sequence", "turn"] = "sequence"):
    """Register `fn(inputs, *, param=default, ...)` as advantage estimator `name`."""

    def decorate(fn: Estimator) -> Estimator:
        ADVANTAGE_ESTIMATORS[name] = fn
        ESTIMATOR_LEVEL[name] = level
        ESTIMATOR_DEFAULTS[name] = _keyword_defaults(fn)
        return fn

    return decorate


def register_shaper(name: str):
    """Register `fn(advantages, inputs, *, param=default, ...)` as sequence-level advantage shaper `name`."""

    def decorate(fn: Shaper) -> Shaper:
        SHAPERS[name] = fn
        SHAPER_DEFAULTS[name] = _keyword_defaults(fn)
        return fn

    return decorate


def _require(inputs: AdvantageInputs, field: str, who: str) -> Any:
    value = getattr(inputs, field)
    if value is None:
        raise AgentRLError(f"{who} needs AdvantageInputs.{field}; the rollout must record it")
    return value


@register_advantage("grpo")
def _grpo(inputs: AdvantageInputs, *, norm_by_std: bool = True, eps: float = 1e-6) -> Tensor:
    return grpo_advantages(inputs.rewards, inputs.group_ids, norm_by_std=norm_by_std, eps=eps)


@register_advantage("rloo")
def _rloo(inputs: AdvantageInputs) -> Tensor:
    return rloo_advantages(inputs.rewards, inputs.group_ids)


@register_advantage("tree_grpo")
def _tree_grpo(inputs: AdvantageInputs, *, combine: Literal["sum", "sequential"] = "sum", eps: float = 1e-6) -> Tensor:
    tree_ids = _require(inputs, "tree_ids", "tree_grpo")
    return tree_grpo_advantages(inputs.rewards, inputs.group_ids, tree_ids, combine=combine, eps=eps)


@register_advantage("gtpo", level="turn")
def _gtpo(
    inputs: AdvantageInputs,
    *,
    gamma: float = 0.9,
    scope: Literal["group", "batch"] = "group",
    eps: float = 1e-6,
    format_penalty: float = -0.1,
    alpha: float = 0.5,
    embedder: Callable[[Sequence[str]], Tensor] | None = None,
) -> Tensor:
    turn_mask = inputs.turn_mask_or_default()
    turn_rewards = inputs.turn_rewards
    if turn_rewards is None:
        outcome = _float(inputs.rewards)
        if inputs.codes is not None and alpha != 0:
            correct = inputs.correct_or_default()
            outcome = gtpo_similarity_outcome(
                outcome, correct, inputs.codes, inputs.group_ids, alpha=alpha, embedder=embedder
            )
        turn_rewards = gtpo_turn_rewards(outcome, turn_mask, inputs.format_errors, format_penalty)
    return gtpo_advantages(turn_rewards, turn_mask, inputs.group_ids, gamma=gamma, scope=scope, eps=eps)


def _split_params(estimator: str, shaping: Sequence[str], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Route each keyword to every callable that takes it; a keyword nobody takes is an error."""
    accepted = [ESTIMATOR_DEFAULTS[estimator]] + [SHAPER_DEFAULTS[s] for s in shaping]
    unknown = sorted(set(params) - set().union(*accepted))
    if unknown:
        valid = sorted(set().union(*accepted))
        raise AgentRLError(
            f"unknown advantage parameter(s) {unknown} for estimator {estimator!r} with shaping "
            f"{list(shaping)}; valid: {valid}"
        )
    return [{k: v for k, v in params.items() if k in names} for names in accepted]


def compute_advantages(
    inputs: AdvantageInputs, estimator: str = "grpo", shaping: Sequence[str] = (), **params: Any
) -> Tensor:
    """Per-token advantages for a batch: estimator, then shapers, then spread over the response tokens.

    Sequence-level estimators (grpo, rloo, tree_grpo) give one value per row, which shapers (aspo) may
    adjust and which every response token of the row receives. Turn-level estimators (gtpo) give `[B, J]`,
    mapped to tokens through `inputs.token_turn`. `params` go to whichever of the estimator and shapers
    takes them by name; their defaults are `ESTIMATOR_DEFAULTS` and `SHAPER_DEFAULTS`.

    Returns:
        `[B, T]` float advantages, 0 where `inputs.response_mask == 0`.
    """
    if estimator not in ADVANTAGE_ESTIMATORS:
        raise AgentRLError(f"unknown advantage estimator {estimator!r}; valid: {sorted(ADVANTAGE_ESTIMATORS)}")
    for name in shaping:
        if name not in SHAPERS:
            raise AgentRLError(f"unknown advantage shaping {name!r}; valid: {sorted(SHAPERS)}")
    if shaping and ESTIMATOR_LEVEL[estimator] != "sequence":
        raise AgentRLError(
            f"shaping {list(shaping)} composes only with sequence-level estimators "
            f"{sorted(n for n, lvl in ESTIMATOR_LEVEL.items() if lvl == 'sequence')}, not {estimator!r}"
        )
    estimator_params, *shaper_params = _split_params(estimator, shaping, params)
    mask = inputs.response_mask.bool()

    advantages = ADVANTAGE_ESTIMATORS[estimator](inputs, **estimator_params)
    if ESTIMATOR_LEVEL[estimator] == "turn":
        turn = inputs.token_turn
        if bool((turn >= advantages.shape[1]).any()):
            raise AgentRLError(
                f"token_turn refers to turn {int(turn.max())} but turn_rewards / turn_mask have "
                f"{advantages.shape[1]} turns"
            )
        per_token = advantages.gather(1, turn.clamp_min(0))
        return torch.where(mask & (turn >= 0), per_token, 0.0)

    for name, kwargs in zip(shaping, shaper_params, strict=True):
        advantages = SHAPERS[name](advantages, inputs, **kwargs)
    return torch.where(mask, advantages[:, None], 0.0)
