"""The vllm engine on a CUDA GPU (official vLLM in the vLLM venv): the path GPU training runs.

bf16 on both sides, as GPU runs use it; kernels differ between HF and vLLM, so only the memorised calls are
compared (their logit margins are wide), each generation ending at its stop rule or EOS.
"""

from __future__ import annotations

import copy
from dataclasses import asdict

import pytest
import torch

from tests.engines.conftest import GREEDY, MAX_LENGTH, generations, hf_generate, ids_and_finish
from tests.engines.harness import SKIP_REASON, run_vllm_side, vllm_python

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(vllm_python() is None, reason=SKIP_REASON),
]


def test_vllm_on_gpu_matches_hf_and_syncs(weights, tmp_path):
    formats = {"fenced": [0, 2], "hermes": [1, 2]}  # prompt rows: the call of that format, and the EOS answer
    cases = [
        {
            "name": f"{fmt}_{phase}",
            "phase": phase,
            "stop": fmt,
            "prompts": [weights.tool_prompts[r] for r in rows],
            "params": asdict(GREEDY),
        }
        for fmt, rows in formats.items()
        for phase in ("A", "B")
    ]
    job = {
        "model_a": str(weights.dir_a),
        "model_b": str(weights.dir_b),
        "max_length": MAX_LENGTH,
        "dtype": "bfloat16",
        "cases": cases,
    }
    vllm = run_vllm_side(job, tmp_path, timeout=1400)
    assert vllm["device"] == "cuda"
    for phase, model in (("A", weights.model_a), ("B", weights.model_b)):
        gpu_model = copy.deepcopy(model).to("cuda", torch.bfloat16)
        for fmt, rows in formats.items():
            prompts = [weights.tool_prompts[r] for r in rows]
            ref = hf_generate(gpu_model, weights.tokenizer, prompts, GREEDY, stop_format=fmt)
            assert ids_and_finish(generations(vllm, f"{fmt}_{phase}")) == ids_and_finish(ref)
            assert [g.finish_reason for g in ref] == ["stop", "eos"]
