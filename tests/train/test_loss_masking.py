"""Observation (tool-output) tokens are never trained on: zero gradient through them, in RL and in SFT."""

from __future__ import annotations

import torch

from agentrl.algos import policy_loss
from agentrl.train.batch import collate, token_logprobs
from agentrl.trajectory import Step, Trajectory


def _trajs():
    return [
        Trajectory(
            "p",
            "g",
            [2, 30, 31],
            [
                Step([40, 41], [-1.0, -1.0], "a", "tool_call", obs_ids=[50, 51, 52]),
                Step([42, 3], [-1.0, -1.0], "b", "answer"),
            ],
        ),
        Trajectory("p", "g", [2, 30], [Step([43], [-1.0], "c", "answer")]),
    ]


def _grad_per_position(model, batch, loss_fn):
    """d loss / d (log-prob of each response token), via a hook on the gathered log-probs."""
    logp = token_logprobs(model, batch)
    logp.retain_grad()
    loss_fn(logp).backward()
    return logp.grad


def test_rl_loss_has_zero_gradient_on_observation_tokens(tiny_model):
    batch = collate(_trajs(), pad_token_id=0)
    advantages = torch.randn(batch.response_mask.shape)
    grad = _grad_per_position(
        tiny_model,
        batch,
        lambda logp: policy_loss(logp, logp.detach(), advantages, batch.response_mask)[0],
    )
    assert torch.all(grad[batch.response_mask == 0] == 0)
    assert torch.all(grad[batch.response_mask == 1] != 0)


def test_observation_tokens_do_not_change_the_loss(tiny_model):
    """Changing what the tool said changes the context, but the loss only reads model tokens' log-probs."""
    batch = collate(_trajs(), pad_token_id=0)
    logp = token_logprobs(tiny_model, batch)
    noisy = logp.clone()
    noisy[batch.response_mask == 0] = -123.0
    advantages = torch.ones_like(logp)
    base = policy_loss(logp, logp, advantages, batch.response_mask)[0]
    assert torch.equal(base, policy_loss(noisy, noisy, advantages, batch.response_mask)[0])


def test_masks_line_up_with_trajectory_tokens():
    batch = collate(_trajs(), pad_token_id=0)
    assert batch.response_mask.tolist() == [[1, 1, 0, 0, 0, 1, 1], [1, 0, 0, 0, 0, 0, 0]]
    assert batch.response_ids[0].tolist() == [40, 41, 50, 51, 52, 42, 3]
    assert batch.token_turn.tolist() == [[0, 0, 0, 0, 0, 1, 1], [0, -1, -1, -1, -1, -1, -1]]


def test_token_logprobs_match_a_plain_forward_pass(tiny_model):
    trajs = _trajs()
    batch = collate(trajs, pad_token_id=0)
    got = token_logprobs(tiny_model, batch)
    for row, t in enumerate(trajs):
        full = torch.log_softmax(tiny_model(input_ids=torch.tensor([t.context_ids])).logits[0], -1)
        start = len(t.prompt_ids)
        want = [full[start - 1 + i, tok].item() for i, tok in enumerate(t.response_ids)]
        assert torch.allclose(got[row, : len(want)], torch.tensor(want), atol=1e-5)
