"""Choosing an engine from config: hf by default, vllm only when asked, and a plain error when vLLM is missing."""

from __future__ import annotations

import importlib.util

import pytest

from agentrl.config import EngineConfig
from agentrl.engines import HFEngine, SamplingParams, build_engine
from agentrl.errors import AgentRLError


def test_default_engine_is_hf_over_the_trainers_model(tiny_model, tokenizer):
    engine = build_engine(EngineConfig(), tiny_model, tokenizer, max_length=64, seed=3)
    assert isinstance(engine, HFEngine) and engine.model is tiny_model
    assert engine.eos.tolist() == [tokenizer.eos_token_id] and engine.pad_token_id == tokenizer.pad_token_id
    (gen,) = engine.generate([[tokenizer.eos_token_id]], SamplingParams(5, greedy=True))
    assert 0 < len(gen.token_ids) <= 5


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed in this interpreter")
def test_vllm_backend_without_vllm_says_how_to_install(tiny_model, tokenizer):
    with pytest.raises(AgentRLError, match=r"pip install vllm.*engine.backend=hf"):
        build_engine(EngineConfig(backend="vllm"), tiny_model, tokenizer, max_length=64)
