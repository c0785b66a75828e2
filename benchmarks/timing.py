"""Timing helpers shared by the benchmarks: medians over repeats (the machines are shared and noisy)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_generate(model, prompts: list[list[int]], pad_id: int, new_tokens: int) -> Callable[[], None]:
    """The baseline: one left-padded batch through `model.generate`, sampling exactly `new_tokens` per row."""
    import torch

    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()

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
