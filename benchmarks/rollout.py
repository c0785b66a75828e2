"""Agent-loop throughput on a multi-turn task, beside plain batched `model.generate` of as many tokens.

The loop samples `--group` trajectories for each of `--problems` prompts with the task's real tools (sandboxed
python for arith-python): model turns, tool calls, observations fed back, until each trajectory answers. The
baseline generates the same number of tokens for the same number of sequences with `model.generate` in one
batch and no tools. Printed: trajectories/s, generated tokens/s, and the ratio (target: the loop keeps at least
80% of raw generation throughput). Medians over repeats.

Run: `python benchmarks/rollout.py [--model DIR] [--repeats 3]` (without --model it first fits the tiny model to
the task's demonstrations with SFT, so that it calls tools as a trained agent does).
"""

from __future__ import annotations

import argparse
import math
from contextlib import ExitStack

import torch
from timing import median_time, plain_generate

from agentrl.config import build_config
from agentrl.engines import HFEngine, SamplingParams
from agentrl.models import load_policy
from agentrl.models.loading import load_pretrained
from agentrl.rollout.chain import AgentLoop, chat_prompt_ids
from agentrl.tasks import load_task
from agentrl.tools import build_tools
from agentrl.train.metrics import rollout_metrics
from agentrl.train.sft import expert_trajectories, sft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="arith-python")
    parser.add_argument("--model", help="a transformers model dir (default: SFT the tiny model first)")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
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
        policy = loop.model_policy(engine, SamplingParams(cfg.rollout.max_new_tokens, cfg.rollout.temperature))
        runs = []

        def agent_loop():
            runs.append(loop.run(problems, args.group, policy))

        agent_loop()  # warm-up (and sandbox start)
        t_loop = median_time(agent_loop, args.repeats)
        trajs = runs[-1]
        stats = rollout_metrics(trajs)
        n_seq = len(trajs)
        tokens = sum(t.num_generated for t in trajs)

    per_seq = math.ceil(tokens / n_seq)
    prompts = [chat_prompt_ids(tok, task.messages(p)) for p in problems for _ in range(args.group)]
    plain = plain_generate(model, prompts, tok.pad_token_id, per_seq)
    plain()
    t_plain = median_time(plain, args.repeats)
    plain_tokens = per_seq * n_seq

    print(
        f"{task.name}: {n_seq} trajectories, {stats['turns']:.2f} turns and {stats['tool_calls']:.2f} tool calls "
        f"each, {tokens / n_seq:.1f} generated tokens each, pass rate {stats['pass_rate']:.3f}, "
        f"threads {torch.get_num_threads()}"
    )
    print(f"{'measure':<28}{'agent loop':>12}{'generate':>12}{'ratio':>8}")
    print(f"{'trajectories/s':<28}{n_seq / t_loop:>12.1f}{n_seq / t_plain:>12.1f}{t_plain / t_loop:>8.2f}")
    loop_tps, plain_tps = tokens / t_loop, plain_tokens / t_plain
    print(f"{'generated tokens/s':<28}{loop_tps:>12.0f}{plain_tps:>12.0f}{loop_tps / plain_tps:>8.2f}")


if __name__ == "__main__":
    main()
