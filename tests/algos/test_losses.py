"""Policy loss: PPO clip with asymmetric ranges, dual clip, verl's aggregation modes, reference KL."""

import math

import pytest
import torch

from agentrl.algos import agg_loss, kl_penalty, masked_mean, policy_loss
from agentrl.errors import AgentRLError


def one_token(ratio: float, advantage: float, **kwargs):
    """Loss and d loss / d logprob for one token at the given ratio and advantage."""
    logprobs = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, metrics = policy_loss(logprobs, torch.zeros(1, 1), torch.tensor([[advantage]]), torch.ones(1, 1), **kwargs)
    loss.backward()
    return loss.item(), logprobs.grad.item(), metrics


def test_masked_tokens_get_no_gradient_and_no_weight():
    logprobs = torch.randn(2, 5, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0]])
    old = logprobs.detach() + torch.randn(2, 5) * 0.1
    old[mask == 0] = -1e4  # observation tokens may hold anything
    loss, _ = policy_loss(logprobs, old, torch.randn(2, 5), mask, ref_logprobs=torch.randn(2, 5), kl_coef=0.1)
    loss.backward()
    assert torch.all(logprobs.grad[mask == 0] == 0)
    assert torch.all(logprobs.grad[mask == 1] != 0)


def test_positive_advantage_is_clipped_above_one_plus_clip_high():
    loss, grad, metrics = one_token(1.5, 2.0)
    assert loss == pytest.approx(-2.0 * 1.28)
    assert grad == 0.0 and metrics["clipfrac"] == 1.0
    loss, grad, metrics = one_token(1.25, 2.0)  # inside the asymmetric upper range
    assert loss == pytest.approx(-2.0 * 1.25)
    assert grad == pytest.approx(-2.0 * 1.25) and metrics["clipfrac"] == 0.0


def test_positive_advantage_is_not_clipped_below_one_minus_clip_low():
    loss, grad, metrics = one_token(0.5, 2.0)
    assert loss == pytest.approx(-1.0)
    assert grad == pytest.approx(-1.0) and metrics["clipfrac"] == 0.0


def test_negative_advantage_is_clipped_below_one_minus_clip_low():
    loss, grad, metrics = one_token(0.5, -1.0)
    assert loss == pytest.approx(0.8)
    assert grad == 0.0 and metrics["clipfrac"] == 1.0


def test_negative_advantage_is_not_clipped_above_one_plus_clip_high_until_the_dual_clip():
    loss, grad, _ = one_token(2.0, -1.0)
    assert loss == pytest.approx(2.0) and grad == pytest.approx(2.0)
    loss, grad, metrics = one_token(5.0, -1.0)
    assert loss == pytest.approx(3.0) and grad == 0.0
    assert metrics["clipfrac_lower"] == 1.0


def test_dual_clip_can_be_disabled_or_changed():
    loss, grad, _ = one_token(5.0, -1.0, dual_clip=None)
    assert loss == pytest.approx(5.0) and grad == pytest.approx(5.0)
    loss, _, _ = one_token(5.0, -1.0, dual_clip=4.0)
    assert loss == pytest.approx(4.0)
    with pytest.raises(AgentRLError, match="dual_clip"):
        one_token(5.0, -1.0, dual_clip=0.5)


def test_symmetric_clip_ranges():
    loss, _, _ = one_token(1.5, 1.0, clip_low=0.1, clip_high=0.1)
    assert loss == pytest.approx(-1.1)
    loss, _, _ = one_token(0.5, -1.0, clip_low=0.1, clip_high=0.1)
    assert loss == pytest.approx(0.9)


LOSS_MAT = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 100.0, 100.0, 100.0], [100.0] * 4])
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])


def test_agg_token_mean():
    assert agg_loss(LOSS_MAT, MASK, "token-mean").item() == pytest.approx((1 + 2 + 3 + 4) / 4)


def test_agg_seq_mean_token_sum_skips_empty_sequences():
    assert agg_loss(LOSS_MAT, MASK, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)


def test_agg_seq_mean_token_mean_skips_empty_sequences():
    assert agg_loss(LOSS_MAT, MASK, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)


def test_agg_unknown_mode_lists_the_valid_ones():
    with pytest.raises(AgentRLError, match="seq-mean-token-mean"):
        agg_loss(LOSS_MAT, MASK, "sum")


def test_policy_loss_uses_the_aggregation():
    advantages = torch.tensor([[1.0, 1.0, 1.0, 0.0], [-2.0, 0.0, 0.0, 0.0]])
    zeros = torch.zeros(2, 4)
    mask = MASK[:2]
    # ratio 1 everywhere: per-token loss is -A
    assert policy_loss(zeros, zeros, advantages, mask, agg="token-mean")[0].item() == pytest.approx(-1 / 4)
    loss, _ = policy_loss(zeros, zeros, advantages, mask, agg="seq-mean-token-sum")
    assert loss.item() == pytest.approx((-3 + 2) / 2)
    loss, _ = policy_loss(zeros, zeros, advantages, mask, agg="seq-mean-token-mean")
    assert loss.item() == pytest.approx((-1 + 2) / 2)


def test_kl_estimators():
    logp, ref = torch.tensor(math.log(0.5)), torch.tensor(math.log(0.25))
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 + math.log(2) - 1)
    assert kl_penalty(logp, ref, "low_var_kl").item() == pytest.approx(0.5 + math.log(2) - 1)
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)
    assert kl_penalty(torch.tensor(0.0), torch.tensor(50.0), "k3").item() == 10.0  # clamped as verl
    with pytest.raises(AgentRLError, match="k3"):
        kl_penalty(logp, ref, "k9")


def test_reference_kl_is_added_with_its_coefficient():
    logprobs = torch.full((1, 2), math.log(0.5))
    ref = torch.full((1, 2), math.log(0.25))
    advantages = torch.ones(1, 2)
    mask = torch.ones(1, 2)
    plain, _ = policy_loss(logprobs, logprobs, advantages, mask)
    loss, metrics = policy_loss(logprobs, logprobs, advantages, mask, ref_logprobs=ref, kl_coef=0.001)
    k3 = 0.5 + math.log(2) - 1
    assert metrics["kl"] == pytest.approx(k3)
    assert loss.item() == pytest.approx(plain.item() + 0.001 * k3)
    with pytest.raises(AgentRLError, match="ref_logprobs"):
        policy_loss(logprobs, logprobs, advantages, mask, kl_coef=0.001)


def test_metrics():
    logprobs = torch.tensor([[0.0, math.log(2.0), 0.0]])
    advantages = torch.tensor([[1.0, 3.0, 99.0]])
    mask = torch.tensor([[1, 1, 0]])
    entropy = torch.tensor([[0.5, 1.5, 99.0]])
    _, m = policy_loss(logprobs, torch.zeros(1, 3), advantages, mask, entropy=entropy)
    assert m["entropy"] == pytest.approx(1.0)
    assert m["adv_mean"] == pytest.approx(2.0) and m["adv_std"] == pytest.approx(1.0)
    assert m["clipfrac"] == pytest.approx(0.5)
    assert m["approx_kl"] == pytest.approx(-math.log(2.0) / 2)
    assert m["pg_loss"] == pytest.approx((-1.0 - 3.0 * 1.28) / 2)
    assert set(m) >= {"loss", "pg_loss", "clipfrac", "clipfrac_lower", "approx_kl", "adv_mean", "adv_std"}


def test_masked_mean():
    x = torch.tensor([[1.0, 2.0, 9.0], [3.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    torch.testing.assert_close(masked_mean(x, mask, dim=1), torch.tensor([1.5, 3.0]))
    assert masked_mean(x, torch.zeros(2, 3)).item() == 0.0
