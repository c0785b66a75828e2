"""Memory knobs: gradient checkpointing changes nothing but memory; bfloat16 trains, resumes, and keeps float32
log-probs."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from agentrl.engines import Generation
from agentrl.models.loading import enable_checkpointing
from agentrl.train.batch import collate, token_logprobs
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import Hooks, train
from agentrl.trajectory import Step, Trajectory


def batch_of(tokenizer, n=4, seed=0):
    rng = torch.Generator().manual_seed(seed)
    vocab = len(tokenizer)
    trajs = []
    for i in range(n):
        prompt = torch.randint(4, vocab, (5 + i,), generator=rng).tolist()
        action, obs = torch.randint(4, vocab, (7,), generator=rng).tolist(), torch.randint(4, vocab, (3,)).tolist()
        gen = Generation(action, [-1.0] * len(action))
        steps = [
            Step(gen.token_ids, gen.logprobs, "", "tool_call", obs_ids=obs),
            Step([9, 10], [-1.0, -1.0], "", "answer"),
        ]
        trajs.append(Trajectory(f"p{i}", "g", prompt, steps))
    return collate(trajs, tokenizer.pad_token_id)


def grads(model, batch) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    logp = token_logprobs(model, batch)
    (-(logp * batch.response_mask).sum()).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model, tokenizer):
    batch = batch_of(tokenizer)
    tiny_model.train()
    plain = grads(tiny_model, batch)
    enable_checkpointing(tiny_model)
    assert any(getattr(m, "gradient_checkpointing", False) for m in tiny_model.modules())
    checkpointed = grads(tiny_model, batch)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=0, atol=1e-7, msg=name)


def test_a_bfloat16_model_gives_float32_log_probs_close_to_float32(tiny_model, tokenizer):
    batch = batch_of(tokenizer)
    with torch.no_grad():
        full = token_logprobs(tiny_model.eval(), batch)
        half = token_logprobs(tiny_model.to(torch.bfloat16), batch)
    assert half.dtype == torch.float32
    mask = batch.response_mask.bool()
    torch.testing.assert_close(half[mask], full[mask], rtol=0.02, atol=0.05)


def test_bfloat16_training_saves_bf16_checkpoints_and_resumes(make_config, arith_task):
    cfg = make_config("run.name=bf16", "train.dtype=bfloat16", "train.steps=2", "sft.steps=5")
    run = RunDir.create(cfg, arith_task.name)
    logged: list[str] = []
    summary = train(cfg, arith_task, run, hooks=Hooks(log=logged.append))
    assert summary["steps"] == 2
    weights = load_file(run.checkpoints / "step-000002" / "model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.bfloat16}
    emulated = not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert any("emulated" in line for line in logged) == emulated  # said once, where it applies
    resumed = make_config("run.name=bf16", "train.dtype=bfloat16", "train.steps=3", "sft.steps=5")
    train(resumed, arith_task, RunDir(run.path), resume=True)
    assert [m["step"] for m in run.read_metrics() if m["stage"] == "rl"] == [1, 2, 3]


@pytest.mark.slow
def test_gradient_checkpointing_leaves_a_run_unchanged(make_config, arith_task):
    runs = {}
    for name, extra in (("plain", []), ("checkpointed", ["train.gradient_checkpointing=true"])):
        cfg = make_config(f"run.name={name}", "train.steps=2", "sft.steps=5", *extra)
        runs[name] = RunDir.create(cfg, arith_task.name)
        train(cfg, arith_task, runs[name])
    last = "checkpoints/step-000002/model.safetensors"
    plain, checkpointed = load_file(runs["plain"].path / last), load_file(runs["checkpointed"].path / last)
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=0, atol=1e-6, msg=key)


def logprobs_and_grads(model, batch, chunk_mib):
    model.zero_grad(set_to_none=True)
    logp, entropy = token_logprobs(model, batch, with_entropy=True, chunk_mib=chunk_mib)
    (-(logp * batch.response_mask).sum()).backward()
    return logp.detach(), entropy, {name: p.grad.clone() for name, p in model.named_parameters()}


def test_log_probs_taken_chunk_by_chunk_equal_one_pass(tiny_model, tokenizer):
    batch = batch_of(tokenizer, n=6)
    tiny_model.train()
    whole = logprobs_and_grads(tiny_model, batch, chunk_mib=512)
    rows_per_chunk = int(0.01 * 2**20 // (4 * len(tokenizer)))
    assert batch.response_ids.numel() > 3 * rows_per_chunk  # several chunks, each recomputed in the backward
    chunked = logprobs_and_grads(tiny_model, batch, chunk_mib=0.01)
    assert torch.equal(chunked[0], whole[0]) and torch.equal(chunked[1], whole[1])
    for name, grad in whole[2].items():
        torch.testing.assert_close(
            chunked[2][name], grad, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}"
        )


def test_a_model_with_softcapped_logits_gets_log_probs_of_its_own_logits(tokenizer):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        final_logit_softcapping=0.5,  # small enough to change every log-prob
    )
    torch.manual_seed(0)
    model = Gemma2ForCausalLM(config).eval()
    batch = batch_of(tokenizer)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        index = batch.target_index[..., None].expand(-1, -1, logits.shape[-1])
        want = torch.log_softmax(logits.gather(1, index), -1).gather(-1, batch.response_ids[..., None]).squeeze(-1)
        head = model.get_output_embeddings()
        uncapped = torch.log_softmax(head(model.get_decoder()(input_ids=batch.input_ids).last_hidden_state), -1)
        assert not torch.allclose(uncapped.gather(1, index).gather(-1, batch.response_ids[..., None]).squeeze(-1), want)
        torch.testing.assert_close(token_logprobs(model, batch, chunk_mib=1), want, rtol=0, atol=1e-6)
