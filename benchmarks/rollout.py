"""Agent-loop throughput on a multi-turn task, beside plain batched `model.generate` of as many tokens.

The loop samples `--group` trajectories for each of `--problems` prompts with the task's real tools (sandboxed
python for arith-python): model turns, tool calls, observations fed back, until each trajectory answers. The
baseline generates the same number of tokens for the same number of sequences with `model.generate` in one
batch and no tools. Printed: trajectories/s, generated tokens/s, and the ratio (target: the loop keeps at least
80% of raw generation throughput), for each `rollout.schedule`: rounds (the default), halves (two halves of the
batch take turns, so one half's tool calls run while the other generates) and continuous (continuous batching:
a trajectory's next turn joins the running decode batch as soon as its tool call returns); and, for each loop,
the share of its wall time spent generating (in generate calls, or in the continuous stream's decode steps)
and the tokens/s of that time alone (what is left once the tools are hidden). Medians over repeats.

Run: `python benchmarks/rollout.py [--model DIR] [--repeats 3]` (without --model it first fits the tiny model to
the task's demonstrations with SFT, so that it calls tools as a trained agent does).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack

import torch
from timing import median_time, plain_generate

from agentrl.config import build_config
from agentrl.engines import HFEngine, SamplingParams
from agentrl.engines.base import Stream
from agentrl.models import load_policy
from agentrl.models.loading import load_pretrained
from agentrl.rollout.chain import AgentLoop, ModelPolicy, chat_prompt_ids
from agentrl.tasks import load_task
from agentrl.tools import build_tools
from agentrl.train.metrics import rollout_metrics
from agentrl.train.sft import expert_trajectories, sft
from agentrl.trajectory import Trajectory

SCHEDULES = ("rounds", "halves", "continuous")


class TimedPolicy:
    """A policy that sums the seconds spent in it (generate calls, or decode steps of its stream): the loop's time
    generating, apart from tools and bookkeeping."""

    def __init__(self, policy: ModelPolicy):
        self.policy, self.seconds = policy, 0.0

    def __call__(self, trajs: list[Trajectory]) -> list:
        return self.timed(self.policy, trajs)

    def stream(self) -> TimedStream:
        return TimedStream(self, self.policy.stream())

    def timed(self, fn: Callable, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - start


class TimedStream:
    def __init__(self, timer: TimedPolicy, stream: Stream):
        self.timer, self.stream = timer, stream

    def add(self, *args) -> None:
        self.stream.add(*args)

    def step(self) -> list:
        return self.timer.timed(self.stream.step)

    def __len__(self) -> int:
        return len(self.stream)

    def close(self) -> None:
        self.stream.close()


def time_loop(run: Callable[[], list[Trajectory]], policy: TimedPolicy, repeats: int):
    """Median seconds of `run` and median seconds of it spent generating, after a warm-up (which also starts the
    sandbox); and its last trajectories."""
    run()
    walls, generating, trajs = [], [], []
    for _ in range(repeats):
        policy.seconds, start = 0.0, time.perf_counter()
        trajs = run()
        walls.append(time.perf_counter() - start)
        generating.append(policy.seconds)
    return statistics.median(walls), statistics.median(generating), trajs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="arith-python")
    parser.add_argument("--model", help="a transformers model dir (default: SFT the tiny model first)")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--schedules", default=",".join(SCHEDULES), help="comma-separated rollout.schedule values")
    args = parser.parse_args()

    task = load_task(args.task)
    cfg = build_config([{"task": task.name}, task.spec.defaults], [])
    with ExitStack() as stack:
        if args.model:
            model, tok = load_pretrained(args.model)
        else:
            model, tok = load_policy(cfg.model, task.vocabulary_sample, seed=0)
        loop = AgentLoop(task, tok, build_tools(task, cfg, stack), cfg.rollout, cfg.model.max_length)
        stack.callback(loop.pool.shutdown)
        engine = HFEngine(model, [tok.eos_token_id], tok.pad_token_id, cfg.model.max_length, seed=0)
        if not args.model:
            demos = expert_trajectories(loop, task, cfg.sft.num_demos, seed=0)
            sft(model, demos, cfg.sft, tok.pad_token_id, engine.generator)
        model.eval()
        problems = task.problems("test", args.problems, seed=0)
        policy = TimedPolicy(
            loop.model_policy(engine, SamplingParams(cfg.rollout.max_new_tokens, cfg.rollout.temperature))
        )
        loops = {}
        for schedule in args.schedules.split(","):
            loop.cfg = cfg.rollout.model_copy(update={"schedule": schedule})
            loops[schedule] = time_loop(lambda: loop.run(problems, args.group, policy), policy, args.repeats)

    trajs = next(iter(loops.values()))[2]
    stats = rollout_metrics(trajs)
    n_seq = len(trajs)
    tokens = sum(t.num_generated for t in trajs)
    per_seq = math.ceil(tokens / n_seq)
    prompts = [chat_prompt_ids(tok, task.messages(p)) for p in problems for _ in range(args.group)]
    plain = plain_generate(model, prompts, tok.pad_token_id, per_seq)
    plain()
    t_plain = median_time(plain, args.repeats)
    plain_tps = per_seq * n_seq / t_plain

    print(
        f"{task.name}: {n_seq} trajectories, {stats['turns']:.2f} turns and {stats['tool_calls']:.2f} tool calls "
        f"each, {tokens / n_seq:.1f} generated tokens each, pass rate {stats['pass_rate']:.3f}, "
        f"threads {torch.get_num_threads()}"
    )
    print(f"{'measure':<44}{'traj/s':>10}{'tokens/s':>10}{'vs generate':>13}{'generating':>12}{'gen tok/s':>11}")
    print(f"{'plain batched model.generate (baseline)':<44}{n_seq / t_plain:>10.1f}{plain_tps:>10.0f}{1:>13.2f}")
    for schedule, (seconds, generating, run) in loops.items():
        label = f"agent loop, schedule={schedule}"
        tokens = sum(t.num_generated for t in run)
        print(
            f"{label:<44}{len(run) / seconds:>10.1f}{tokens / seconds:>10.0f}{tokens / seconds / plain_tps:>13.2f}"
            f"{generating / seconds:>12.0%}{tokens / generating:>11.0f}"
        )
    print(
        "generating: the share of the loop's wall time spent in generate calls (the rest: tool calls not hidden "
        "behind generation, and bookkeeping; continuous: in decode steps of its stream); gen tok/s: tokens per "
        "second of those calls alone"
    )


if __name__ == "__main__":
    main()
