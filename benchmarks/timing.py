"""Timing helpers shared by the benchmarks: medians over repeats (the machines are shared and noisy)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeats: int) -> float:
    return median_time_and_cpu(fn, repeats)[0]


def median_time_and_cpu(fn: Callable[[], object], repeats: int) -> tuple[float, float | None]:
    """Median wall seconds of `fn`, and median CPU seconds the whole machine spent meanwhile (its own processes and
    any it drives, such as sandboxes; None where /proc/stat is missing). Run it on an otherwise idle machine."""
    times, cpus = [], []
    for _ in range(repeats):
        cpu, start = machine_cpu_seconds(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if cpu is not None:
            cpus.append(machine_cpu_seconds() - cpu)
    return statistics.median(times), statistics.median(cpus) if cpus else None


def machine_cpu_seconds() -> float | None:
    """CPU seconds all of this machine's cores have been busy since boot (Linux), else None."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def plain_generate(model, prompts: list[list[int]], pad_id: int, new_tokens: int) -> Callable[[], None]:
    """The baseline: one left-padded batch through `model.generate`, sampling exactly `new_tokens` per row."""
    import torch

    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=model.device)
    starts = torch.tensor([width - len(p) for p in prompts], device=model.device)
    mask = (torch.arange(width, device=model.device)[None, :] >= starts[:, None]).long()

    def run() -> None:
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=pad_id,
                eos_token_id=None,
            )
        assert out.shape[1] == width + new_tokens

    return run


def plain_vllm_generate(llm, prompts: list[list[int]], new_tokens: int) -> Callable[[], None]:
    """The same baseline on a vLLM `LLM`: one batch of token prompts, sampling exactly `new_tokens` per row."""
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True, detokenize=False)
    requests = [{"prompt_token_ids": p} for p in prompts]

    def run() -> None:
        out = llm.generate(requests, params, use_tqdm=False)
        assert all(len(o.outputs[0].token_ids) == new_tokens for o in out)

    return run
