"""LoRA: adapters only in checkpoints, exact resume, the KL reference is the adapter switched off, bf16 agrees with
fp32, and bad settings say what to do."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from safetensors.torch import load_file

from agentrl.config import LoraConfig
from agentrl.errors import AgentRLError
from agentrl.models import lora as lora_module
from agentrl.models.loading import load_pretrained
from agentrl.models.lora import AdapterOff, add_lora
from agentrl.train.batch import token_logprobs
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import Hooks, train

from .test_memory_knobs import batch_of

pytest.importorskip("peft", reason="LoRA needs peft: pip install 'agentrl[lora]'")
LORA = ["model.lora.r=4", "algo.kl_coef=0.05", "sft.steps=5"]


class Crash(Exception):
    pass


def nonzero_adapter(model) -> None:
    """Fresh adapters are the identity (B = 0): give them a visible update."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))


def test_a_lora_run_checkpoints_the_adapter_and_resumes_bit_exactly(make_config, arith_task):
    whole_cfg = make_config("run.name=whole", "train.steps=2", *LORA)
    whole = RunDir.create(whole_cfg, arith_task.name)
    train(whole_cfg, arith_task, whole)

    def crash_after_step_1(metrics):
        if metrics.get("stage") == "rl" and metrics.get("step") == 1:
            raise Crash

    broken_cfg = make_config("run.name=broken", "train.steps=2", *LORA)
    broken = RunDir.create(broken_cfg, arith_task.name)
    with pytest.raises(Crash):
        train(broken_cfg, arith_task, broken, hooks=Hooks(advance=crash_after_step_1))
    train(broken_cfg, arith_task, broken, resume=True)

    last = "checkpoints/step-000002"
    assert not (whole.path / last / "model.safetensors").exists()  # the adapter only
    ours, theirs = (
        load_file(whole.path / last / "adapter_model.safetensors"),
        load_file(broken.path / last / "adapter_model.safetensors"),
    )
    assert ours.keys() == theirs.keys() and all("lora_" in k for k in ours)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    merged, _ = load_pretrained(whole.path / last)  # evals get a plain model: the adapter merged onto sft_model
    assert type(merged) is type(load_pretrained(whole.sft_model)[0])


def test_an_adapter_checkpoint_loads_merged_for_evals_and_trainable_for_resume(tiny_model, tokenizer, tmp_path):
    tiny_model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    model = add_lora(tiny_model, LoraConfig(r=4), base=tmp_path / "base").eval()
    nonzero_adapter(model)
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    batch = batch_of(tokenizer)
    merged, _ = load_pretrained(tmp_path / "ckpt")
    trainable, _ = load_pretrained(tmp_path / "ckpt", trainable_adapter=True)
    base, _ = load_pretrained(tmp_path / "base")
    assert not any("lora_" in k for k in merged.state_dict())
    assert {n for n, p in trainable.named_parameters() if p.requires_grad} == {
        n for n, p in model.named_parameters() if p.requires_grad
    }
    with torch.no_grad():
        want = token_logprobs(model, batch)
        torch.testing.assert_close(token_logprobs(merged.eval(), batch), want, rtol=0, atol=1e-5)
        assert torch.equal(token_logprobs(trainable.eval(), batch), want)
        assert not torch.allclose(token_logprobs(base.eval(), batch), want)


def test_the_kl_reference_with_the_adapter_off_is_the_base_model(tiny_model, tokenizer):
    batch = batch_of(tokenizer)
    base = copy.deepcopy(tiny_model).eval()
    model = add_lora(tiny_model, LoraConfig(r=4)).eval()
    nonzero_adapter(model)
    with torch.no_grad():
        reference = token_logprobs(AdapterOff(model), batch)
        assert torch.equal(reference, token_logprobs(base, batch))
        assert not torch.allclose(token_logprobs(model, batch), reference)


def test_bf16_lora_loss_and_adapter_gradients_match_fp32(tiny_model, tokenizer):
    batch = batch_of(tokenizer)
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)  # the same adapter initialisation for both
        model = add_lora(copy.deepcopy(tiny_model).to(dtype), LoraConfig(r=4))
        nonzero_adapter(model)
        logp = token_logprobs(model, batch)
        loss = -(logp * batch.response_mask).sum() / batch.response_mask.sum()
        loss.backward()
        grads = {n: p.grad.float() for n, p in model.named_parameters() if p.requires_grad}
        results[dtype] = (loss.item(), grads)
    (loss32, grads32), (loss16, grads16) = results[torch.float32], results[torch.bfloat16]
    assert loss16 == pytest.approx(loss32, rel=0.02)
    for name, grad in grads32.items():
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), grads16[name].flatten(), dim=0)
        assert cosine > 0.98, name


def test_an_unknown_target_module_names_the_models_linear_layers(tiny_model):
    with pytest.raises(AgentRLError, match="qkv match no linear layer") as err:
        add_lora(tiny_model, LoraConfig(r=4, target_modules=["q_proj", "qkv"]))
    assert "down_proj" in str(err.value) and "lm_head" not in str(err.value)


def test_lora_without_peft_says_which_extra(monkeypatch, tiny_model):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(AgentRLError, match=r"pip install 'agentrl\[lora\]'"):
        lora_module.add_lora(tiny_model, LoraConfig(r=4))


def test_merged_weights_are_the_merged_model_under_the_base_names(tiny_model, tokenizer):
    names = set(tiny_model.state_dict())
    model = add_lora(copy.deepcopy(tiny_model), LoraConfig(r=4))
    nonzero_adapter(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weights = lora_module.merged_weights(model)
    want = copy.deepcopy(model).merge_and_unload().state_dict()
    assert set(weights) == names - {"lm_head.weight"}  # tied to the embeddings: saved once, as save_model does
    for name, tensor in weights.items():
        torch.testing.assert_close(tensor, want[name], rtol=0, atol=1e-6)
    assert any(not torch.equal(weights[k], tiny_model.state_dict()[k]) for k in weights)  # the adapter is in
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the policy is untouched
