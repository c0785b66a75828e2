"""Browser-tool throughput: a web task's expert demonstrations through the real agent loop and Chromium.

Times `--demos` demonstrations (each a real browser episode: search, open, clicks, answer) with recycled
browser contexts (the default: a finished trajectory's context and blank page go to the next one) and, as the
baseline in the same run, with `recycle_contexts: false` (a new context and page per trajectory). Prints steps/s
of each and their ratio; medians over `--repeats`.

Run: `python benchmarks/browser.py [--task web-qa] [--demos 64] [--repeats 1]` (3.5 min at the defaults on 2 CPU
cores).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack

from agentrl.config import build_config
from agentrl.models import load_policy
from agentrl.rollout.chain import AgentLoop
from agentrl.tasks import load_task
from agentrl.tools import build_tools
from agentrl.train.sft import expert_trajectories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="web-qa")
    parser.add_argument("--demos", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    task = load_task(args.task)
    cfg = build_config([{"task": task.name}, task.spec.defaults], [])
    _, tokenizer = load_policy(cfg.model, task.vocabulary_sample, seed=0)
    rates = {}
    for recycle in (False, True):
        times, steps = [], 0
        for _ in range(args.repeats):
            with ExitStack() as stack:  # a fresh Chromium each time
                tools = build_tools(task, cfg, stack)
                tools["browser"].worker.recycle = recycle
                loop = AgentLoop(task, tokenizer, tools, cfg.rollout, cfg.model.max_length)
                stack.callback(loop.pool.shutdown)
                start = time.perf_counter()
                trajs = expert_trajectories(loop, task, args.demos, seed=0)
                times.append(time.perf_counter() - start)
                steps = sum(len(t.steps) for t in trajs)
        rates[recycle] = steps / statistics.median(times)
        label = "recycled contexts and pages" if recycle else "new context and page each (baseline)"
        print(
            f"{label:<40} {args.demos} demos, {steps} steps: {statistics.median(times):6.1f} s, "
            f"{rates[recycle]:.2f} steps/s"
        )
    print(f"recycled / baseline: {rates[True] / rates[False]:.2f}x")


if __name__ == "__main__":
    main()
