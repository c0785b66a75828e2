"""RL algorithms as pure functions of tensors: advantage estimators, advantage shaping, the policy loss.

Importing this package registers every estimator (`ADVANTAGE_ESTIMATORS`) and shaper (`SHAPERS`).
"""

from agentrl.algos.advantages import (
    ADVANTAGE_ESTIMATORS,
    ESTIMATOR_DEFAULTS,
    ESTIMATOR_LEVEL,
    SHAPER_DEFAULTS,
    SHAPERS,
    AdvantageInputs,
    compute_advantages,
    group_index,
    grpo_advantages,
    gtpo_advantages,
    gtpo_similarity_outcome,
    gtpo_turn_rewards,
    register_advantage,
    register_shaper,
    rloo_advantages,
    tree_grpo_advantages,
)
from agentrl.algos.code_similarity import CharNgramTfidf, cosine_similarity
from agentrl.algos.losses import agg_loss, kl_penalty, masked_mean, policy_loss
from agentrl.algos.shaping import aspo_shape

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "ESTIMATOR_DEFAULTS",
    "ESTIMATOR_LEVEL",
    "SHAPERS",
    "SHAPER_DEFAULTS",
    "AdvantageInputs",
    "CharNgramTfidf",
    "agg_loss",
    "aspo_shape",
    "compute_advantages",
    "cosine_similarity",
    "group_index",
    "grpo_advantages",
    "gtpo_advantages",
    "gtpo_similarity_outcome",
    "gtpo_turn_rewards",
    "kl_penalty",
    "masked_mean",
    "policy_loss",
    "register_advantage",
    "register_shaper",
    "rloo_advantages",
    "tree_grpo_advantages",
]
