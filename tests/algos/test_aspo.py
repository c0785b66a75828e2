"""ASPO: advantage shaping toward early code calls, clipped to k * |A|."""

import math

import torch

from agentrl.algos import aspo_shape

NAN = math.nan


def test_early_code_is_favoured_among_correct_code_users():
    adv = torch.tensor([1.0, 1.0, 1.0, -1.0])
    correct = torch.tensor([True, True, True, False])
    first_code = torch.tensor([10.0, 30.0, NAN, 5.0])
    length = torch.tensor([100.0, 100.0, 50.0, 80.0])
    shaped = aspo_shape(adv, correct, first_code, length, ["g"] * 4)
    # eligible: rows 0 and 1; mean p 20, mean L 100; b = -2 * (p - 20) / 100 = (0.2, -0.2)
    torch.testing.assert_close(shaped, torch.tensor([1.2, 0.8, 1.0, -1.0]))


def test_bonus_is_clipped_to_k_times_abs_advantage():
    adv = torch.tensor([1.0, 0.5])
    first_code = torch.tensor([0.0, 100.0])
    shaped = aspo_shape(adv, torch.tensor([True, True]), first_code, torch.tensor([100.0, 100.0]), ["g", "g"])
    # b = (1.0, -1.0), bounds 0.7 and 0.35
    torch.testing.assert_close(shaped, torch.tensor([1.7, 0.15]))


def test_aggressive_setting():
    adv = torch.tensor([2.0, 2.0])
    shaped = aspo_shape(
        adv,
        torch.tensor([True, True]),
        torch.tensor([0.0, 40.0]),
        torch.tensor([100.0, 60.0]),
        [0, 0],
        -2.5,
        0.9,
    )
    # mean p 20, mean L 80: b = -2.5 * (-20, 20) / 80 = (0.625, -0.625)
    torch.testing.assert_close(shaped, torch.tensor([2.625, 1.375]))


def test_ineligible_rows_and_groups_without_eligible_members_are_unchanged():
    adv = torch.tensor([0.3, -0.4, 0.9, 0.1])
    correct = torch.tensor([False, True, True, True])
    first_code = torch.tensor([3.0, NAN, NAN, NAN])
    shaped = aspo_shape(adv, correct, first_code, torch.full((4,), 50.0), ["a", "a", "b", "b"])
    assert torch.equal(shaped, adv)


def test_single_eligible_member_gets_no_bonus():
    adv = torch.tensor([1.0, -1.0])
    shaped = aspo_shape(
        adv, torch.tensor([True, False]), torch.tensor([40.0, 2.0]), torch.tensor([100.0, 100.0]), ["g", "g"]
    )
    assert torch.equal(shaped, adv)


def test_groups_use_their_own_eligible_means():
    adv = torch.ones(4)
    first_code = torch.tensor([10.0, 30.0, 0.0, 10.0])
    length = torch.tensor([100.0, 100.0, 20.0, 20.0])
    shaped = aspo_shape(adv, torch.ones(4, dtype=torch.bool), first_code, length, ["a", "a", "b", "b"])
    # group b: mean p 5, mean L 20: b = -2 * (-5, 5) / 20 = (0.5, -0.5)
    torch.testing.assert_close(shaped, torch.tensor([1.2, 0.8, 1.5, 0.5]))
