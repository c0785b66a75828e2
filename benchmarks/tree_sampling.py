"""Rollouts per generated token and per tool call: chains and several Tree-GRPO shapes sampled from one model on the
same prompts, with each shape's ratio to chains.

Run: `python benchmarks/tree_sampling.py --model DIR [--task arith-python] [--shapes 2,2,1 2,4,2]` (shapes M,N,L).
Training at equal cost is a sweep: `agentrl sweep --spec sweeps/algorithms.yaml` (docs/sweeps.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from rich.console import Console
from rich.table import Table

from agentrl.config import Config, build_config
from agentrl.engines import HFEngine, SamplingParams
from agentrl.models.loading import load_pretrained
from agentrl.rollout.chain import AgentLoop, Policy
from agentrl.tasks import load_task
from agentrl.tools import build_tools
from agentrl.train.trainer import sample


@contextmanager
def sampling_loop(task, cfg: Config, model, tokenizer, seed: int = 1) -> Iterator[tuple[AgentLoop, Policy]]:
    """The task's agent loop (its tools running) and a policy sampling from `model`."""
    with ExitStack() as stack:
        loop = AgentLoop(task, tokenizer, build_tools(task, cfg, stack), cfg.rollout, cfg.model.max_length)
        stack.callback(loop.pool.shutdown)
        engine = HFEngine(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, cfg.model.max_length, seed=seed)
        yield loop, loop.model_policy(engine, SamplingParams(cfg.rollout.max_new_tokens, cfg.rollout.temperature))


def with_rollout(cfg: Config, **rollout) -> Config:
    return cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update=rollout)})


def sampling_cost(cfg: Config, task, model_dir: str, shapes: list[str]) -> None:
    """Rollouts per token of chains and of each tree shape, sampled from one model on the same prompts."""
    model, tokenizer = load_pretrained(model_dir)
    model.eval()
    problems = task.problems("train", cfg.rollout.prompts_per_step, seed=cfg.train.seed)
    table = Table(title=f"{task.name}: sampling cost, {len(problems)} prompts, model {model_dir}")
    for column in ("sampler", "leaves", "tokens", "tool calls", "leaves/1k tokens", "leaves/tool call", "ratio"):
        table.add_column(column)
    with sampling_loop(task, cfg, model, tokenizer) as (loop, policy):
        base = None
        for shape in ["chain", *shapes]:
            shaped = with_rollout(cfg, sampler="chain")
            if shape != "chain":
                m, n, depth = (int(x) for x in shape.split(","))
                tree = {"trees": m, "expansions": n, "iterations": depth, "keep": 10**6}
                shaped = with_rollout(cfg, sampler="tree", tree=cfg.rollout.tree.model_copy(update=tree))
            _, cost = sample(loop, problems, policy, shaped, step=1)
            per_token = 1000 * cost.leaves / cost.generated_tokens
            base = base or per_token
            label = shape if shape == "chain" else "tree M,N,L=" + shape
            table.add_row(
                label,
                *map(str, [cost.leaves, cost.generated_tokens, cost.tool_calls]),
                f"{per_token:.1f}",
                f"{cost.leaves / cost.tool_calls:.2f}",
                f"{per_token / base:.2f}x",
            )
    Console(width=140).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the model to sample from (a transformers directory)")
    parser.add_argument("--task", default="arith-python")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config key=value")
    parser.add_argument("--shapes", nargs="+", default=["2,2,1", "2,4,1", "2,2,2", "2,4,2"], help="tree M,N,L")
    args = parser.parse_args()
    task = load_task(args.task)
    cfg = build_config([{"task": task.name}, task.spec.defaults], ["rollout.prompts_per_step=32", *args.overrides])
    sampling_cost(cfg, task, args.model, args.shapes)


if __name__ == "__main__":
    main()
