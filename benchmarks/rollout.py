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

Then what the tools cost: the loop's tool calls replayed without the model, and the CPU work of those calls and
of plain generation (on one thread), from which the most of plain generation any schedule can keep when model and
tools share this machine's cores. With `--engine vllm` the loop samples through vLLM, and plain batched vLLM
generation of the same tokens is measured beside `model.generate`.

Run: `python benchmarks/rollout.py [--model DIR] [--repeats 3] [--engine vllm] [--set KEY=VALUE ...]` (without
--model it first fits the tiny model to the task's demonstrations with SFT, so that it calls tools as a trained
agent does; `--set rollout.format=native` for a pretrained model's own format).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack, closing

import torch
from timing import median_time_and_cpu, plain_generate, plain_vllm_generate

from agentrl.config import build_config
from agentrl.engines import SamplingParams, build_engine
from agentrl.engines.base import Stream
from agentrl.models import load_policy
from agentrl.models.loading import load_pretrained
from agentrl.rollout.chain import AgentLoop, ModelPolicy
from agentrl.tasks import load_task
from agentrl.tools import build_tools
from agentrl.train.metrics import rollout_metrics
from agentrl.train.sft import expert_trajectories, sft
from agentrl.trajectory import Trajectory

SCHEDULES = ("rounds", "halves", "continuous")
BASELINE = "plain batched model.generate (baseline)"
VLLM_BASELINE = "plain batched vLLM generate"


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


def replay_tools(loop: AgentLoop, trajs: list[Trajectory]) -> Callable[[], None]:
    """The trajectories' tool calls without the model: each one's calls in order, in fresh tool states opened and
    closed as the loop does, all trajectories at once on the loop's thread pool."""
    calls = [[(c["name"], c["arguments"]) for s in t.steps for c in s.calls if c["name"] in loop.tools] for t in trajs]

    def replay(own: list[tuple[str, dict]]) -> None:
        states = {name: tool.open_state() for name, tool in loop.tools.items()}
        try:
            for name, args in own:
                loop.tools[name].run(args, states[name])
        finally:
            for state in states.values():
                if state is not None:
                    state.close()

    return lambda: list(loop.pool.map(replay, calls))


def limits(t_plain: float, generation_work: float | None, tools: tuple[float, float | None], calls: int) -> str:
    """What the tool calls cost beside plain generation, and the most of plain generation any schedule can keep
    when tools and model share this machine's cores: all their CPU work must fit in the loop's wall time."""
    t_tools, tools_work = tools
    text = (
        f"the loop's {calls} tool calls alone (replayed without the model, as concurrently as the loop runs them): "
        f"{t_tools:.2f} s, {t_tools / t_plain:.0%} of plain generation's time"
    )
    if generation_work is None or tools_work is None:
        return text
    cores = os.cpu_count() or 1
    floor = max(t_plain, t_tools, (generation_work + tools_work) / cores)
    return (
        f"{text}\nCPU work: plain generation {generation_work:.2f} CPU-s (on one thread), the tool calls "
        f"{tools_work:.2f} CPU-s; together they need at least {floor:.2f} s of wall time on {cores} cores, so no "
        f"schedule keeps more than {t_plain / floor:.2f} of plain generation on this machine"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="arith-python")
    parser.add_argument("--model", help="a transformers model dir (default: SFT the tiny model first)")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--schedules", default=",".join(SCHEDULES), help="comma-separated rollout.schedule values")
    parser.add_argument("--engine", choices=("hf", "vllm"), default="hf", help="the loop's engine (engine.backend)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="the model's device")
    parser.add_argument("--set", action="append", default=[], help="a config override, e.g. rollout.format=native")
    args = parser.parse_args()

    task = load_task(args.task)
    cfg = build_config([{"task": task.name}, task.spec.defaults], [f"engine.backend={args.engine}", *args.set])
    with ExitStack() as stack:
        if args.model:
            model, tok = load_pretrained(args.model, args.device)
        else:
            model, tok = load_policy(cfg.model, task.vocabulary_sample, seed=0, device=args.device)
        loop = AgentLoop(task, tok, build_tools(task, cfg, stack), cfg.rollout, cfg.model.max_length)
        stack.callback(loop.pool.shutdown)
        if not args.model:
            demos = expert_trajectories(loop, task, cfg.sft.num_demos, seed=0)
            sft(model, demos, cfg.sft, tok.pad_token_id, torch.Generator().manual_seed(0))
        model.eval()
        engine = stack.enter_context(closing(build_engine(cfg.engine, model, tok, cfg.model.max_length)))
        problems = task.problems("test", args.problems, seed=0)
        policy = TimedPolicy(
            loop.model_policy(engine, SamplingParams(cfg.rollout.max_new_tokens, cfg.rollout.temperature))
        )
        loops = {}
        for schedule in args.schedules.split(","):
            loop.cfg = cfg.rollout.model_copy(update={"schedule": schedule})
            loops[schedule] = time_loop(lambda: loop.run(problems, args.group, policy), policy, args.repeats)

        trajs = next(iter(loops.values()))[2]
        n_seq, per_seq = len(trajs), max(1, math.ceil(sum(t.num_generated for t in trajs) / len(trajs)))
        prompts = [loop.prompt_ids(p) for p in problems for _ in range(args.group)]
        baselines = {BASELINE: plain_generate(model, prompts, tok.pad_token_id, per_seq)}
        if args.engine == "vllm":
            baselines[VLLM_BASELINE] = plain_vllm_generate(engine.llm, prompts, per_seq)
        for run in baselines.values():
            run()  # warm-up
        plain = {name: median_time_and_cpu(run, args.repeats) for name, run in baselines.items()}
        tools = median_time_and_cpu(replay_tools(loop, trajs), args.repeats)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # its CPU work without threads waiting on each other
        generation_work = median_time_and_cpu(baselines[BASELINE], args.repeats)[1]
        torch.set_num_threads(threads)

    stats = rollout_metrics(trajs)
    print(
        f"{task.name}, engine {args.engine}: {n_seq} trajectories, {stats['turns']:.2f} turns and "
        f"{stats['tool_calls']:.2f} tool calls each, {stats['generated_tokens'] / n_seq:.1f} generated tokens each, "
        f"pass rate {stats['pass_rate']:.3f}, device {args.device}, threads {torch.get_num_threads()}"
    )
    plain_tps = {name: per_seq * n_seq / seconds for name, (seconds, _) in plain.items()}
    reference = plain_tps[BASELINE]
    print(f"{'measure':<44}{'traj/s':>10}{'tokens/s':>10}{'vs generate':>13}{'generating':>12}{'gen tok/s':>11}")
    for name, tps in plain_tps.items():
        print(f"{name:<44}{tps / per_seq:>10.1f}{tps:>10.0f}{tps / reference:>13.2f}")
    for schedule, (seconds, generating, run) in loops.items():
        label = f"agent loop, schedule={schedule}"
        tokens = sum(t.num_generated for t in run)
        print(
            f"{label:<44}{len(run) / seconds:>10.1f}{tokens / seconds:>10.0f}{tokens / seconds / reference:>13.2f}"
            f"{generating / seconds:>12.0%}{tokens / generating:>11.0f}"
        )
    if args.engine == "vllm":
        own = plain_tps[VLLM_BASELINE]
        ratios = ", ".join(f"{k} {sum(t.num_generated for t in v[2]) / v[0] / own:.2f}" for k, v in loops.items())
        print(f"agent loop vs plain batched vLLM generate: {ratios}")
    calls = sum(c["name"] in loop.tools for t in trajs for s in t.steps for c in s.calls)
    print(limits(plain[BASELINE][0], generation_work, tools, calls))
    print(
        "generating: the share of the loop's wall time spent in generate calls (the rest: tool calls not hidden "
        "behind generation, and bookkeeping; continuous: in decode steps of its stream); gen tok/s: tokens per "
        "second of those calls alone"
    )


if __name__ == "__main__":
    main()
