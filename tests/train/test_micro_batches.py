"""Length-sorted micro-batches: the update equals one pass over the whole minibatch, in every aggregation mode."""

from __future__ import annotations

import copy

import pytest
import torch

from agentrl.train.batch import collate
from agentrl.train.trainer import rl_step
from agentrl.trajectory import Step, Trajectory


def varied_trajectories(vocab: int, n: int = 12) -> list[Trajectory]:
    gen = torch.Generator().manual_seed(0)
    trajs = []
    for i in range(n):
        prompt = torch.randint(4, vocab, (3 + i % 4,), generator=gen).tolist()
        steps = []
        for j in range(1 + i % 3):
            action = torch.randint(4, vocab, (2 + (i * 7 + j) % 9,), generator=gen).tolist()
            obs = torch.randint(4, vocab, ((i + j) % 5,), generator=gen).tolist()
            steps.append(Step(action, [-1.5] * len(action), "", "tool_call", obs_ids=obs))
        trajs.append(Trajectory(str(i // 4), str(i // 4), prompt, steps, reward=float(i % 3 == 0)))
    return trajs


def test_micro_batches_are_length_sorted_and_within_budget(tokenizer):
    batch = collate(varied_trajectories(len(tokenizer)), tokenizer.pad_token_id)
    rows = torch.arange(len(batch.input_ids))
    groups = batch.micro_batches(rows, max_tokens=60)
    assert sorted(torch.cat(groups).tolist()) == rows.tolist()
    assert len(groups) > 1
    for g in groups:
        lengths = batch.lengths[g]
        assert lengths.tolist() == sorted(lengths.tolist(), reverse=True)
        assert len(g) == 1 or len(g) * int(lengths.max()) <= 60
        trimmed = batch.select(g).trim()
        assert trimmed.input_ids.shape[1] == int(lengths.max())
        assert trimmed.response_mask.sum() == batch.response_mask[g].sum()


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_micro_batched_update_equals_one_pass(make_config, tiny_model, tokenizer, agg):
    trajs = varied_trajectories(len(tokenizer))
    results = []
    for budget in (10**6, 48):
        cfg = make_config(f"algo.loss_agg={agg}", f"train.micro_batch_tokens={budget}", "algo.minibatch_size=6")
        model = copy.deepcopy(tiny_model)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        info = rl_step(model, None, optimizer, trajs, cfg, tokenizer.pad_token_id, torch.Generator().manual_seed(1))
        results.append((info, [p.detach().clone() for p in model.parameters()]))
    (one_info, one_weights), (micro_info, micro_weights) = results
    for a, b in zip(one_weights, micro_weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert micro_info["loss"] == pytest.approx(one_info["loss"], rel=1e-4, abs=1e-6)
    assert not torch.equal(one_weights[0], tiny_model.model.embed_tokens.weight), "the update changed the weights"


def test_a_single_update_takes_its_old_logprobs_from_the_loss_pass(make_config, tiny_model, tokenizer, monkeypatch):
    """One epoch in one minibatch skips the old-policy pass; the update is the one the separate pass gives."""
    import agentrl.train.trainer as trainer

    trajs = varied_trajectories(len(tokenizer))
    cfg = make_config("algo.minibatch_size=64", "train.micro_batch_tokens=48")
    assert trainer.single_update(cfg, len(trajs))
    results = []
    for skip in (True, False):
        monkeypatch.setattr(trainer, "single_update", lambda cfg, n, skip=skip: skip)
        model = copy.deepcopy(tiny_model)
        calls = []
        model.register_forward_hook(lambda module, args, out, calls=calls: calls.append(1))
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        info = rl_step(model, None, optimizer, trajs, cfg, tokenizer.pad_token_id, torch.Generator().manual_seed(1))
        results.append((len(calls), info, [p.detach().clone() for p in model.parameters()]))
    (one_calls, one_info, one_weights), (two_calls, two_info, two_weights) = results
    assert two_calls == 2 * one_calls > 0
    for a, b in zip(one_weights, two_weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert one_info["loss"] == pytest.approx(two_info["loss"], rel=1e-4, abs=1e-6)
    assert not torch.equal(one_weights[0], tiny_model.model.embed_tokens.weight)
