"""GRPO and RLOO: group statistics over arbitrary group ids."""

import pytest
import torch

from agentrl.algos import group_index, grpo_advantages, rloo_advantages


def test_grpo_zscores_each_group_with_unbiased_std():
    rewards = torch.tensor([1.0, 0.0, 0.0, 2.0, 4.0])
    adv = grpo_advantages(rewards, ["a", "a", "a", "b", "b"])
    # group a: mean 1/3, std sqrt(1/3); group b: mean 3, std sqrt(2)
    expected = torch.tensor([1.1547, -0.5774, -0.5774, -0.7071, 0.7071])
    torch.testing.assert_close(adv, expected, atol=1e-4, rtol=0)


def test_grpo_group_of_one_keeps_reward_over_one_plus_eps():
    adv = grpo_advantages(torch.tensor([0.7, 1.0, 0.0]), ["solo", "pair", "pair"])
    assert adv[0].item() == pytest.approx(0.7 / (1 + 1e-6))


def test_grpo_without_std_normalisation_subtracts_the_mean():
    adv = grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 3.0]), [7, 7, 7, 8], norm_by_std=False)
    torch.testing.assert_close(adv, torch.tensor([2 / 3, -1 / 3, -1 / 3, 3.0]))


def test_grpo_identical_rewards_give_zero():
    assert torch.equal(grpo_advantages(torch.ones(4), ["g"] * 4), torch.zeros(4))


def test_grpo_groups_may_interleave_and_be_any_hashable():
    ids = [("p", 1), ("p", 2), ("p", 1), ("p", 2)]
    adv = grpo_advantages(torch.tensor([1.0, 5.0, 0.0, 5.0]), ids)
    torch.testing.assert_close(adv[[0, 2]], grpo_advantages(torch.tensor([1.0, 0.0]), ["x", "x"]))
    assert torch.equal(adv[[1, 3]], torch.zeros(2))


def test_group_index_is_contiguous_for_lists_and_tensors():
    index, n = group_index(["b", "a", "b", "c"])
    assert index.tolist() == [0, 1, 0, 2] and n == 3
    index, n = group_index(torch.tensor([10, 3, 10]))
    assert sorted(set(index.tolist())) == [0, 1] and n == 2


def test_rloo_is_reward_minus_mean_of_the_others():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.5])
    adv = rloo_advantages(rewards, ["g", "g", "g", "solo"])
    torch.testing.assert_close(adv, torch.tensor([1.0, -0.5, -0.5, 0.5]))


def test_group_ids_given_as_tensor_elements_group_by_value():
    ids = list(torch.tensor([4, 4, 9]))  # 0-d tensors hash by identity; grouped by value all the same
    torch.testing.assert_close(
        grpo_advantages(torch.tensor([1.0, 0.0, 1.0]), ids),
        grpo_advantages(torch.tensor([1.0, 0.0, 1.0]), [4, 4, 9]),
    )
