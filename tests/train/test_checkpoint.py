"""Checkpoints round-trip weights, optimizer, RNG and state; an interrupted save is never mistaken for one."""

from __future__ import annotations

import torch

from agentrl.models.loading import load_pretrained
from agentrl.train.checkpoint import list_checkpoints, load_trainer_state, restore_rng, save_checkpoint


def test_round_trip(tmp_path, tiny_model, tokenizer):
    optimizer = torch.optim.AdamW(tiny_model.parameters(), lr=1e-3)
    tiny_model(input_ids=torch.tensor([[1, 2, 3]])).logits.sum().backward()
    optimizer.step()
    gen = torch.Generator().manual_seed(7)
    torch.rand(3, generator=gen)
    path = save_checkpoint(tmp_path, 5, tiny_model, tokenizer, optimizer, gen, {"eval_before": {"x": 1}}, keep=2)

    model2, tok2 = load_pretrained(path)
    for (name, a), (_, b) in zip(tiny_model.state_dict().items(), model2.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert tok2.encode("What is 12 * 3?") == tokenizer.encode("What is 12 * 3?")
    state, extra = load_trainer_state(path)
    assert state == {"eval_before": {"x": 1}, "step": 5}
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    opt2.load_state_dict(extra["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    expected = torch.rand(4, generator=gen)
    gen2 = torch.Generator()
    restore_rng(extra["rng"], gen2)
    assert torch.equal(torch.rand(4, generator=gen2), expected)


def test_keeps_newest_and_ignores_partial_saves(tmp_path, tiny_model, tokenizer):
    gen = torch.Generator()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, tiny_model, tokenizer, None, gen, {}, keep=2)
    (tmp_path / ".tmp-step-000004").mkdir()  # a save cut short by a crash
    (tmp_path / "step-000009").mkdir()  # no state.json: incomplete
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000002", "step-000003"]
