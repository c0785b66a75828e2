"""A reused trajectory's old log-probs in the PPO ratio are those recorded when it was sampled, in the one-pass
update and in the update with a separate old-policy pass alike."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

import agentrl.train.trainer as trainer
from agentrl.train.batch import collate, token_logprobs
from agentrl.train.trainer import rl_step
from tests.train.test_micro_batches import varied_trajectories


def _recorded_from(model, traj, pad_id: int, shift: float):
    """`traj` with its recorded log-probs set to the model's own plus `shift`, as if another policy sampled it."""
    with torch.no_grad():
        current = token_logprobs(model, collate([traj], pad_id))[0].tolist()
    steps, pos = [], 0
    for s in traj.steps:
        steps.append(replace(s, action_logprobs=[x + shift for x in current[pos : pos + len(s.action_ids)]]))
        pos += len(s.action_ids) + len(s.obs_ids)
    return replace(traj, steps=steps)


@pytest.mark.parametrize("one_pass", [True, False])
def test_a_reused_success_is_clipped_by_its_sampling_logprobs(
    make_config, tiny_model, tokenizer, monkeypatch, one_pass
):
    monkeypatch.setattr(trainer, "single_update", lambda cfg, n: one_pass)
    cfg = make_config("algo.minibatch_size=64")
    pad = tokenizer.pad_token_id
    trajs = varied_trajectories(len(tokenizer))
    assert trajs[0].reward == 1.0 and trajs[0].group_id == "0"  # a success in a group with failures: A > 0
    # the policy that sampled it gave its tokens e^-1 of today's probability: ratio e > 1 + clip_high on every token
    trajs[0] = _recorded_from(tiny_model.eval(), trajs[0], pad, shift=-1.0)
    tokens = [t.num_generated for t in trajs]
    clipfracs = {}
    for reused_from in (None, 3):
        batch = [replace(trajs[0], reused_from=reused_from), *trajs[1:]]
        model = copy.deepcopy(tiny_model).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        info = rl_step(model, None, optimizer, batch, cfg, pad, torch.Generator().manual_seed(1))
        clipfracs[reused_from] = info["clipfrac"]
    assert clipfracs[None] == 0.0  # on-policy rows: ratio 1
    assert clipfracs[3] == pytest.approx(tokens[0] / sum(tokens), rel=1e-6)  # all of the reused row, nothing else
