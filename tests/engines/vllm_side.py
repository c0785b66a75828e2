"""The vLLM half of the engine tests, run in the vLLM venv: `python -m tests.engines.vllm_side JOB OUT`.

JOB (json): `model_a`, `model_b` (transformers directories; A's holds the tokenizer), `max_length`, `dtype`,
`syncs` (extra timed syncs to B) and `cases`: `{name, phase, prompts, params, stop, seed?, repeat?, staggered?}`
with `phase` one of A, B, A2, L, `stop` a tool-call format or null, and `staggered` to feed the prompts through
`engine.stream` two per step instead of one `generate` call. Phases run in order on one engine: A, then
`sync_weights` to B, B, then back to A, A2, and with `model_lora` (a LoRA adapter directory on A) L: the adapter's
policy synced as a PeftModel. OUT: each case's generations, seconds per case, sync seconds.
With `small_heads` (a model directory), OUT's `small_heads_error` is the error building an engine on it gives.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path


def main(job_path: str, out_path: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentrl.engines.base import SamplingParams
    from agentrl.engines.vllm import VLLMEngine
    from agentrl.errors import AgentRLError
    from agentrl.models.loading import load_pretrained
    from tests.engines.harness import loop_stop_rule

    job = json.loads(Path(job_path).read_text())
    dtype = getattr(torch, job.get("dtype", "float32"))
    tokenizer = AutoTokenizer.from_pretrained(job["model_a"])
    formats = {case["stop"] for case in job["cases"] if case["stop"]}
    rules = {fmt: loop_stop_rule(fmt, tokenizer, job["max_length"]) for fmt in formats}

    def load(key: str):
        if key == "model_lora":  # the policy of a LoRA run: a PeftModel, its adapter trainable
            return load_pretrained(job[key], dtype=job.get("dtype", "float32"), trainable_adapter=True)[0]
        return AutoModelForCausalLM.from_pretrained(job[key], dtype=dtype)

    out: dict = {"results": {}, "seconds": {}, "sync_s": [], "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if "small_heads" in job:
        try:
            VLLMEngine(load("small_heads"), [tokenizer.eos_token_id], job["max_length"]).close()
            out["small_heads_error"] = None
        except AgentRLError as exc:
            out["small_heads_error"] = str(exc)
    start = time.perf_counter()
    with VLLMEngine(load("model_a"), [tokenizer.eos_token_id], job["max_length"], seed=0) as engine:
        out["seconds"]["start"] = time.perf_counter() - start
        phases = [("A", None), ("B", "model_b"), ("A2", "model_a")] + [("L", "model_lora")] * ("model_lora" in job)
        for phase, weights in phases:
            if weights is not None:
                model = load(weights)
                for _ in range(1 + (job.get("syncs", 0) if phase == "B" else 0)):
                    out["sync_s"].append(engine.sync_weights(model))
            for case in (c for c in job["cases"] if c["phase"] == phase):
                times = []
                for _ in range(case.get("repeat", 1)):  # best of `repeat` runs
                    if "seed" in case:
                        engine.generator.manual_seed(case["seed"])
                    tic = time.perf_counter()
                    params, stop = SamplingParams(**case["params"]), rules.get(case["stop"])
                    if case.get("staggered"):
                        gens = staggered(engine.stream(params, stop), case["prompts"])
                    else:
                        gens = engine.generate(case["prompts"], params, stop)
                    times.append(time.perf_counter() - tic)
                out["seconds"][case["name"]] = min(times)
                out["results"][case["name"]] = [dataclasses.asdict(g) for g in gens]
    Path(out_path).write_text(json.dumps(out))


def staggered(stream, prompts: list[list[int]]) -> list:
    """Two prompts join the running batch at each step, as an agent loop's turns come back from their tools."""
    queue, out = list(enumerate(prompts)), {}
    while queue or stream:
        for row, prompt in queue[:2]:
            stream.add(row, prompt)
        queue = queue[2:]
        out.update(stream.step())
    stream.close()
    return [out[row] for row in range(len(prompts))]


if __name__ == "__main__":  # vLLM starts its engine core in a new process, which re-imports this module
    main(*sys.argv[1:3])
