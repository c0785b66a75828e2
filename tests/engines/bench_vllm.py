"""Throughput of the vllm engine against the hf engine on the default tiny model, and the weight-sync time.

    .venv/bin/python -m tests.engines.bench_vllm [--prompts 64] [--tokens 48] [--threads 1]

Both engines sample the same prompts at temperature 1 with the same thread count (vLLM's CPU worker bound to
that many cores); best of `--repeat` runs each. vLLM runs in the vLLM venv (`make vllm-venv`).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from agentrl.config import ModelConfig
from agentrl.engines import HFEngine, SamplingParams
from agentrl.models.tiny import build_tiny_model, train_tokenizer
from agentrl.rollout.formats import chat_prompt_ids
from agentrl.tasks import load_task
from tests.engines.harness import SKIP_REASON, run_vllm_side, vllm_python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--syncs", type=int, default=5)
    args = parser.parse_args()
    if vllm_python() is None:
        raise SystemExit(SKIP_REASON)
    torch.set_num_threads(args.threads)

    cfg = ModelConfig()  # the default tiny model: 128 wide, 4 layers, 4 heads
    task = load_task("arith-python")
    tokenizer = train_tokenizer(task.vocabulary_sample, cfg.vocab_size)
    torch.manual_seed(0)
    model_a = build_tiny_model(tokenizer, cfg).eval()
    model_b = copy.deepcopy(model_a)
    with torch.no_grad():
        for p in model_b.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # an "update"
    prompts = [chat_prompt_ids(tokenizer, task.messages(p)) for p in task.problems("test", args.prompts, 0)]
    params = SamplingParams(args.tokens, temperature=1.0)

    hf = HFEngine(model_a, [tokenizer.eos_token_id], tokenizer.pad_token_id, cfg.max_length)
    hf.generate(prompts[:4], params)  # warm-up
    hf_times, hf_tokens = [], 0
    for _ in range(args.repeat):
        tic = time.perf_counter()
        gens = hf.generate(prompts, params)
        hf_times.append(time.perf_counter() - tic)
        hf_tokens = sum(len(g.token_ids) for g in gens)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, model in (("a", model_a), ("b", model_b)):
            model.save_pretrained(root / name)
            tokenizer.save_pretrained(root / name)
        bench = {"phase": "A", "stop": None, "prompts": prompts, "params": asdict(params), "repeat": args.repeat}
        job = {
            "model_a": str(root / "a"),
            "model_b": str(root / "b"),
            "max_length": cfg.max_length,
            "syncs": args.syncs - 1,
            "cases": [{"name": "warm-up", **bench, "prompts": prompts[:4], "repeat": 1}, {"name": "bench", **bench}],
        }
        binding = "0" if args.threads == 1 else f"0-{args.threads - 1}"
        vllm = run_vllm_side(job, root, timeout=1800, env={"VLLM_CPU_OMP_THREADS_BIND": binding})
    vllm_tokens = sum(len(g["token_ids"]) for g in vllm["results"]["bench"])
    hf_rate, vllm_rate = hf_tokens / min(hf_times), vllm_tokens / vllm["seconds"]["bench"]
    syncs = sorted(vllm["sync_s"][: args.syncs])
    print(f"{args.prompts} prompts x {args.tokens} tokens, {args.threads} thread(s), best of {args.repeat}")
    print(f"hf   : {hf_tokens} tokens in {min(hf_times):.2f} s = {hf_rate:,.0f} tokens/s")
    print(f"vllm : {vllm_tokens} tokens in {vllm['seconds']['bench']:.2f} s = {vllm_rate:,.0f} tokens/s")
    print(f"ratio vllm/hf: {vllm_rate / hf_rate:.2f}x; vLLM start-up {vllm['seconds']['start']:.1f} s")
    median = syncs[len(syncs) // 2]
    print(f"sync_weights: median {median * 1000:.0f} ms over {len(syncs)} (min {syncs[0] * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
