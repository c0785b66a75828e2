"""The trainer's one entry point: estimator, then shapers, then per-token advantages on response tokens."""

import math

import pytest
import torch

from agentrl.algos import (
    ADVANTAGE_ESTIMATORS,
    ESTIMATOR_DEFAULTS,
    SHAPERS,
    AdvantageInputs,
    aspo_shape,
    compute_advantages,
    grpo_advantages,
    gtpo_advantages,
    gtpo_turn_rewards,
    rloo_advantages,
    tree_grpo_advantages,
)
from agentrl.errors import AgentRLError

# row 0: turn 0 (3 model tokens, 1 observation token), turn 1 (2 model tokens)
# row 1: turn 0 (2 model tokens), then padding; row 2 (another prompt): turn 0, 4 tokens
RESPONSE_MASK = torch.tensor([[1, 1, 1, 0, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]])
TOKEN_TURN = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 0, -1, -1, -1, -1], [0, 0, 0, 0, -1, -1]])


def make_inputs(**fields) -> AdvantageInputs:
    base = dict(
        rewards=torch.tensor([1.0, 0.0, 1.0]),
        group_ids=["g", "g", "h"],
        response_mask=RESPONSE_MASK,
        token_turn=TOKEN_TURN,
    )
    return AdvantageInputs(**(base | fields))


def test_registry_holds_the_paper_estimators_and_shapers():
    assert set(ADVANTAGE_ESTIMATORS) >= {"grpo", "rloo", "tree_grpo", "gtpo"}
    assert "aspo" in SHAPERS
    assert ESTIMATOR_DEFAULTS["gtpo"]["gamma"] == 0.9
    assert ESTIMATOR_DEFAULTS["tree_grpo"]["combine"] == "sum"


def test_sequence_estimator_broadcasts_over_model_tokens_only():
    out = compute_advantages(make_inputs(), "grpo")
    adv = grpo_advantages(torch.tensor([1.0, 0.0, 1.0]), ["g", "g", "h"])
    torch.testing.assert_close(out, adv[:, None] * RESPONSE_MASK)


def test_params_reach_the_estimator():
    out = compute_advantages(make_inputs(), "grpo", norm_by_std=False)
    torch.testing.assert_close(out[:, 0], torch.tensor([0.5, -0.5, 1.0]))


def test_rloo_and_tree_grpo_through_the_entry_point():
    inputs = make_inputs(tree_ids=["t1", "t2", "t3"])
    torch.testing.assert_close(
        compute_advantages(inputs, "rloo")[:, 0], rloo_advantages(inputs.rewards, inputs.group_ids)
    )
    torch.testing.assert_close(
        compute_advantages(inputs, "tree_grpo")[:, 0],
        tree_grpo_advantages(inputs.rewards, inputs.group_ids, inputs.tree_ids),
    )


def test_gtpo_maps_turn_advantages_to_tokens():
    turn_rewards = torch.tensor([[0.2, 1.0], [0.0, 0.0], [1.0, 0.0]])
    turn_mask = torch.tensor([[True, True], [True, False], [True, False]])
    out = compute_advantages(make_inputs(turn_rewards=turn_rewards, turn_mask=turn_mask), "gtpo")
    turn_adv = gtpo_advantages(turn_rewards, turn_mask, ["g", "g", "h"])
    a = turn_adv
    expected = torch.tensor(
        [
            [a[0, 0], a[0, 0], a[0, 0], 0.0, a[0, 1], a[0, 1]],
            [a[1, 0], a[1, 0], 0.0, 0.0, 0.0, 0.0],
            [a[2, 0], a[2, 0], a[2, 0], a[2, 0], 0.0, 0.0],
        ]
    )
    torch.testing.assert_close(out, expected)


def test_gtpo_builds_turn_rewards_and_turn_mask_when_absent():
    format_errors = torch.tensor([[True, False], [False, False], [False, False]])
    out = compute_advantages(make_inputs(format_errors=format_errors), "gtpo", format_penalty=-0.2)
    turn_mask = torch.tensor([[True, True], [True, False], [True, False]])
    turn_rewards = gtpo_turn_rewards(torch.tensor([1.0, 0.0, 1.0]), turn_mask, format_errors, -0.2)
    torch.testing.assert_close(turn_rewards, torch.tensor([[-0.2, 1.0], [0.0, 0.0], [1.0, 0.0]]))
    expected = gtpo_advantages(turn_rewards, turn_mask, ["g", "g", "h"])
    torch.testing.assert_close(out[:, [0, 4]], torch.stack([expected[:, 0], expected[:, 1] * RESPONSE_MASK[:, 4]], 1))


def test_gtpo_self_supervised_shaping_uses_codes():
    codes = ["print(2 + 2)", "print(2 + 2)", ""]
    shaped = compute_advantages(make_inputs(codes=codes), "gtpo")
    plain = compute_advantages(make_inputs(), "gtpo")
    # the wrong row ran the correct row's code: its last-turn reward becomes alpha * 1 = 0.5
    assert shaped[1, 0] > plain[1, 0]
    off = compute_advantages(make_inputs(codes=codes), "gtpo", alpha=0.0)
    torch.testing.assert_close(off, plain)


def test_aspo_composes_on_grpo():
    first_code = torch.tensor([2.0, math.nan, 1.0])
    inputs = make_inputs(
        rewards=torch.tensor([1.0, 1.0, 0.0]),
        first_code_pos=first_code,
        response_len=torch.tensor([6.0, 2.0, 4.0]),
    )
    inputs.rewards[1] = 0.5
    out = compute_advantages(inputs, "grpo", shaping=["aspo"], delta=-2.5, k=0.9)
    base = grpo_advantages(inputs.rewards, inputs.group_ids)
    shaped = aspo_shape(base, inputs.rewards > 0, first_code, inputs.response_len, inputs.group_ids, -2.5, 0.9)
    torch.testing.assert_close(out, shaped[:, None] * RESPONSE_MASK)


def test_unknown_estimator_lists_the_valid_names():
    with pytest.raises(AgentRLError, match="grpo.*gtpo.*rloo.*tree_grpo"):
        compute_advantages(make_inputs(), "ppo")


def test_unknown_shaper_lists_the_valid_names():
    with pytest.raises(AgentRLError, match="aspo"):
        compute_advantages(make_inputs(), "grpo", shaping=["lenpen"])


def test_unknown_parameter_is_an_error():
    with pytest.raises(AgentRLError, match="gama"):
        compute_advantages(make_inputs(), "gtpo", gama=0.5)


def test_shaping_a_turn_level_estimator_is_an_error():
    with pytest.raises(AgentRLError, match="sequence-level"):
        compute_advantages(make_inputs(first_code_pos=torch.zeros(3)), "gtpo", shaping=["aspo"])


def test_missing_fields_are_named():
    with pytest.raises(AgentRLError, match="tree_ids"):
        compute_advantages(make_inputs(), "tree_grpo")
    with pytest.raises(AgentRLError, match="first_code_pos"):
        compute_advantages(make_inputs(), "grpo", shaping=["aspo"])


NEXT_TO_0_7 = float(torch.nextafter(torch.tensor(0.7), torch.tensor(1.0)))  # 0.7 and the next float32 up


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
def test_every_estimator_gives_a_group_of_equal_rewards_exactly_zero(name):
    # prompt g: four leaves whose rewards are equal up to float32 round-off; prompt h: real spread
    rewards = torch.tensor([0.7, NEXT_TO_0_7, 0.7, 0.7, 1.0, 0.0, 1.0, 0.0])
    inputs = AdvantageInputs(
        rewards=rewards,
        group_ids=["g"] * 4 + ["h"] * 4,
        tree_ids=["g1", "g1", "g2", "g2", "h1", "h1", "h2", "h2"],
        response_mask=torch.ones(8, 3),
        token_turn=torch.zeros(8, 3, dtype=torch.long),
    )
    advantages = compute_advantages(inputs, name)
    assert torch.equal(advantages[:4], torch.zeros(4, 3))
    assert bool((advantages[4:] != 0).all())


def test_sequential_tree_grpo_gives_a_tree_of_equal_leaves_exactly_zero():
    # tree t1's leaves all scored 0.7 (their inter-prompt z-scores are equal); before, float32 round-off in the
    # second normalisation left them about +-0.01 apart
    rewards = torch.tensor([0.7, 0.7, 0.7, 0.0, 1.0, 0.0])
    out = tree_grpo_advantages(rewards, ["p"] * 6, ["t1"] * 3 + ["t2"] * 3, combine="sequential")
    assert torch.equal(out[:3], torch.zeros(3)) and out.dtype == torch.float32
    assert out[4] > 0 > out[3]
    assert torch.equal(rloo_advantages(torch.tensor([0.7, NEXT_TO_0_7, 0.7]), ["g"] * 3), torch.zeros(3))
