"""Tree-GRPO: inter-tree plus intra-tree GRPO over the kept leaves."""

import pytest
import torch

from agentrl.algos import grpo_advantages, tree_grpo_advantages
from agentrl.errors import AgentRLError

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
PROMPTS = ["q"] * 6
TREES = ["t1"] * 3 + ["t2"] * 3


def test_worked_example_sum():
    adv = tree_grpo_advantages(REWARDS, PROMPTS, TREES)
    expected = torch.tensor([2.0676, -1.4902, -1.4902, 1.4902, 1.4902, -2.0676])
    torch.testing.assert_close(adv, expected, atol=1e-4, rtol=0)


def test_worked_example_parts():
    inter = grpo_advantages(REWARDS, PROMPTS)
    intra = grpo_advantages(REWARDS, TREES)
    torch.testing.assert_close(
        inter, torch.tensor([0.9129, -0.9129, -0.9129, 0.9129, 0.9129, -0.9129]), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        intra, torch.tensor([1.1547, -0.5773, -0.5773, 0.5773, 0.5773, -1.1547]), atol=1e-4, rtol=0
    )


def test_worked_example_sequential_equals_intra():
    adv = tree_grpo_advantages(REWARDS, PROMPTS, TREES, combine="sequential")
    torch.testing.assert_close(adv, grpo_advantages(REWARDS, TREES), atol=1e-4, rtol=0)


def test_prompts_are_normalised_separately():
    rewards = torch.cat([REWARDS, torch.tensor([0.0, 1.0])])
    adv = tree_grpo_advantages(rewards, PROMPTS + ["r", "r"], TREES + ["t3", "t4"])
    torch.testing.assert_close(adv[:6], tree_grpo_advantages(REWARDS, PROMPTS, TREES))
    # each of r's trees holds one leaf: intra is r / (1 + eps)
    inter = grpo_advantages(torch.tensor([0.0, 1.0]), ["r", "r"])
    torch.testing.assert_close(adv[6:], inter + torch.tensor([0.0, 1.0]) / (1 + 1e-6))


def test_tree_id_shared_by_two_prompts_is_an_error():
    with pytest.raises(AgentRLError, match="unique across prompts"):
        tree_grpo_advantages(torch.zeros(2), ["p", "q"], ["t", "t"])


def test_unknown_combine_is_an_error():
    with pytest.raises(AgentRLError, match="sequential"):
        tree_grpo_advantages(REWARDS, PROMPTS, TREES, combine="product")
