"""GTPO turn level: turn rewards (Eq. 5), returns (Eq. 6), group-normalised advantages (Eq. 7), shaping."""

import pytest
import torch

from agentrl.algos import gtpo_advantages, gtpo_similarity_outcome, gtpo_turn_rewards
from agentrl.errors import AgentRLError

TURN_REWARDS = torch.tensor([[0.0, 0.0, 1.0], [-0.1, 0.2, 0.0]])
TURN_MASK = torch.tensor([[True, True, True], [True, True, False]])


def test_worked_example():
    adv = gtpo_advantages(TURN_REWARDS, TURN_MASK, ["g", "g"], gamma=0.9)
    expected = torch.tensor([[0.4981, 0.7096, 0.9446], [-1.2172, -0.9352, 0.0]])
    torch.testing.assert_close(adv, expected, atol=1e-4, rtol=0)


def test_padded_turns_are_ignored_whatever_they_hold():
    rewards = TURN_REWARDS.clone()
    rewards[1, 2] = 100.0
    torch.testing.assert_close(
        gtpo_advantages(rewards, TURN_MASK, ["g", "g"]), gtpo_advantages(TURN_REWARDS, TURN_MASK, ["g", "g"])
    )


def test_groups_are_normalised_separately_and_batch_scope_pools_them():
    rewards = torch.cat([TURN_REWARDS, TURN_REWARDS * 3])
    mask = torch.cat([TURN_MASK, TURN_MASK])
    by_group = gtpo_advantages(rewards, mask, ["g", "g", "h", "h"])
    torch.testing.assert_close(by_group[:2], by_group[2:])  # z-scores are scale-free
    by_batch = gtpo_advantages(rewards, mask, ["g", "g", "h", "h"], scope="batch")
    assert not torch.allclose(by_batch[:2], by_batch[2:])
    assert by_batch[mask].mean().abs() < 1e-6


def test_a_set_of_one_turn_keeps_its_return():
    adv = gtpo_advantages(torch.tensor([[0.5, 0.0]]), torch.tensor([[True, False]]), ["solo"])
    torch.testing.assert_close(adv, torch.tensor([[0.5 / (1 + 1e-6), 0.0]]))


def test_unknown_scope_is_an_error():
    with pytest.raises(AgentRLError, match="batch"):
        gtpo_advantages(TURN_REWARDS, TURN_MASK, ["g", "g"], scope="everything")


def test_turn_rewards_put_outcome_on_last_turn_and_penalise_bad_format():
    format_errors = torch.tensor([[False, True, False], [True, False, False]])
    rewards = gtpo_turn_rewards(torch.tensor([1.0, 0.0]), TURN_MASK, format_errors)
    torch.testing.assert_close(rewards, torch.tensor([[0.0, -0.1, 1.0], [-0.1, 0.0, 0.0]]))


def test_turn_rewards_penalty_on_the_last_turn_adds_to_the_outcome():
    format_errors = torch.tensor([[False, False, True], [False, True, True]])
    rewards = gtpo_turn_rewards(torch.tensor([1.0, 1.0]), TURN_MASK, format_errors, format_penalty=-0.5)
    torch.testing.assert_close(rewards, torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.5, 0.0]]))


def _fixed_embedder(vectors):
    return lambda codes: torch.tensor([vectors[c] for c in codes])


def test_similarity_shaping_rewards_wrong_code_close_to_correct_code():
    embed = _fixed_embedder({"right": [1.0, 0.0], "close": [1.0, 1.0], "opposite": [-1.0, 0.0], "x": [0.0, 1.0]})
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])
    correct = rewards > 0
    codes = ["right", "close", "opposite", "close", "x"]
    groups = ["g", "g", "g", "h", "h"]  # h has no correct member: unchanged
    shaped = gtpo_similarity_outcome(rewards, correct, codes, groups, alpha=0.5, embedder=embed)
    torch.testing.assert_close(shaped, torch.tensor([1.0, 0.5 * 0.70711, 0.0, 0.0, 0.0]))


def test_similarity_shaping_averages_over_the_correct_members():
    embed = _fixed_embedder({"a": [1.0, 0.0], "b": [0.0, 1.0], "w": [1.0, 0.0]})
    shaped = gtpo_similarity_outcome(
        torch.tensor([1.0, 1.0, 0.0]),
        torch.tensor([True, True, False]),
        ["a", "b", "w"],
        ["g"] * 3,
        0.5,
        embed,
    )
    assert shaped[2].item() == pytest.approx(0.5 * (1.0 + 0.0) / 2)


def test_similarity_shaping_with_the_default_tfidf_embedder():
    code = "import math\nprint(math.factorial(10))"
    codes = [code, code, "while True: pass"]
    shaped = gtpo_similarity_outcome(
        torch.tensor([1.0, 0.0, 0.0]), torch.tensor([True, False, False]), codes, ["g"] * 3
    )
    assert shaped[1].item() == pytest.approx(0.5)
    assert 0.0 <= shaped[2].item() < 0.1
