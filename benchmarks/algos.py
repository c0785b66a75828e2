"""Chain-GRPO against Tree-GRPO on a bundled multi-turn task at the same token budget and the same seeds.

1. SFT once (the chain run); the tree run starts from the same SFT model.
2. Calibrate: sample one step of trees from the SFT model, then pick the chain group size G whose chains spend
   the same generated tokens per prompt.
3. Train both for the same number of steps on the same prompts, and print for each: leaves (rollouts) per
   1,000 generated tokens and per tool call, total tokens sampled, held-out pass@1 before/after, wall time,
   and the tree/chain ratio of rollouts per token.

Run: `python benchmarks/algos.py [--task arith-python] [--steps 30]` (about 15 min on 2 CPU cores).
`--model DIR` only measures sampling: chains and several tree shapes (`--shapes 2,2,1 2,4,2`, M,N,L) sampled
from the same model on the same prompts, with rollouts per 1k tokens and per tool call, and their ratios.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentrl.config import Config, build_config
from agentrl.engines import HFEngine, SamplingParams
from agentrl.models.loading import load_pretrained
from agentrl.rollout.chain import AgentLoop
from agentrl.rollout.tree import SamplingCost
from agentrl.tasks import load_task
from agentrl.tools import build_tools
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import TRAIN_POOL, sample, train


def run(cfg: Config, task) -> tuple[RunDir, float]:
    rundir = RunDir.create(cfg, task.name)
    start = time.perf_counter()
    train(cfg, task, rundir)
    return rundir, time.perf_counter() - start


def calibrate_group_size(cfg: Config, task, model_dir: Path) -> tuple[int, SamplingCost, SamplingCost]:
    """G such that G chains per prompt cost the tokens one prompt's trees cost, measured on the SFT model."""
    model, tokenizer = load_pretrained(model_dir)
    model.eval()
    problems = task.problems("train", TRAIN_POOL, seed=cfg.train.seed)[: cfg.rollout.prompts_per_step]
    with ExitStack() as stack:
        loop = AgentLoop(task, tokenizer, build_tools(task, cfg, stack), cfg.rollout, cfg.model.max_length)
        stack.callback(loop.pool.shutdown)
        engine = HFEngine(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, cfg.model.max_length, seed=99)
        policy = loop.model_policy(engine, SamplingParams(cfg.rollout.max_new_tokens, cfg.rollout.temperature))
        tree_cfg = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"sampler": "tree"})})
        _, tree_cost = sample(loop, problems, policy, tree_cfg, step=0)
        chain_cfg = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"group_size": 4})})
        _, chain_cost = sample(loop, problems, policy, chain_cfg, step=0)
    per_chain = chain_cost.generated_tokens / chain_cost.leaves
    group = max(1, round(tree_cost.generated_tokens / len(problems) / per_chain))
    return group, tree_cost, chain_cost


def sampling_only(cfg: Config, task, model_dir: str, shapes: list[str]) -> None:
    """Rollouts per token of chains and of each tree shape, sampled from one model on the same prompts."""
    model, tokenizer = load_pretrained(model_dir)
    model.eval()
    problems = task.problems("train", cfg.rollout.prompts_per_step, seed=cfg.train.seed)
    table = Table(title=f"{task.name}: sampling cost, {len(problems)} prompts, model {model_dir}")
    for column in ("sampler", "leaves", "tokens", "tool calls", "leaves/1k tokens", "leaves/tool call", "ratio"):
        table.add_column(column)
    with ExitStack() as stack:
        loop = AgentLoop(task, tokenizer, build_tools(task, cfg, stack), cfg.rollout, cfg.model.max_length)
        stack.callback(loop.pool.shutdown)
        engine = HFEngine(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, cfg.model.max_length, seed=1)
        policy = loop.model_policy(engine, SamplingParams(cfg.rollout.max_new_tokens, cfg.rollout.temperature))
        base = None
        for shape in ["chain", *shapes]:
            rollout = {"sampler": "chain"}
            if shape != "chain":
                m, n, depth = (int(x) for x in shape.split(","))
                tree = {"trees": m, "expansions": n, "iterations": depth, "keep": 10**6}
                rollout = {"sampler": "tree", "tree": cfg.rollout.tree.model_copy(update=tree)}
            shaped = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update=rollout)})
            _, cost = sample(loop, problems, policy, shaped, step=1)
            per_token = 1000 * cost.leaves / cost.generated_tokens
            base = base or per_token
            label = shape if shape == "chain" else "tree M,N,L=" + shape
            row = [label, cost.leaves, cost.generated_tokens, cost.tool_calls, per_token]
            table.add_row(
                *map(str, row[:4]),
                f"{per_token:.1f}",
                f"{cost.leaves / cost.tool_calls:.2f}",
                f"{per_token / base:.2f}x",
            )
    Console(width=140).print(table)


def summarise(name: str, rundir: RunDir, seconds: float) -> dict:
    rl = [m for m in rundir.read_metrics() if m["stage"] == "rl"]
    summary = json.loads(rundir.summary.read_text())
    leaves = sum(m["leaves"] for m in rl)
    tokens = sum(m["sampled_tokens"] for m in rl)
    calls = sum(m["leaves"] / m["leaves_per_tool_call"] for m in rl)
    return {
        "sampler": name,
        "leaves": leaves,
        "sampled_tokens": tokens,
        "leaves_per_1k_tokens": 1000 * leaves / tokens,
        "leaves_per_tool_call": leaves / calls,
        "pass@1_before": summary["pass@1_before"],
        "pass@1_after": summary["pass@1_after"],
        "wall_s": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="arith-python")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--runs-dir", default="runs/bench-algos")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config key=value")
    parser.add_argument("--model", help="only measure sampling cost, with this model")
    parser.add_argument("--shapes", nargs="+", default=["2,2,1", "2,4,1", "2,2,2", "2,4,2"], help="tree M,N,L")
    args = parser.parse_args()

    task = load_task(args.task)
    if args.model:
        cfg = build_config([{"task": task.name}, task.spec.defaults], ["rollout.prompts_per_step=32", *args.overrides])
        sampling_only(cfg, task, args.model, args.shapes)
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    common = [f"train.steps={args.steps}", f"run.runs_dir={args.runs_dir}", *args.overrides]

    def config(*extra: str) -> Config:
        return build_config([{"task": task.name}, task.spec.defaults], [*common, *extra])

    # SFT once, inside a zero-step run; both samplers start RL from this model
    base, _ = run(config("train.steps=0", f"run.name=sft-{stamp}"), task)
    group, tree_cost, chain_cost = calibrate_group_size(config(), task, base.sft_model)
    start_from = [f"model.path={base.sft_model}", "sft.steps=0"]
    chain, chain_s = run(config(*start_from, f"rollout.group_size={group}", f"run.name=chain-{stamp}"), task)
    tree, tree_s = run(
        config(*start_from, "rollout.sampler=tree", "algo.advantage=tree_grpo", f"run.name=tree-{stamp}"), task
    )

    tree_cfg = config().rollout.tree
    rows = [summarise(f"chain (G={group})", chain, chain_s), summarise("tree", tree, tree_s)]
    table = Table(title=f"{task.name}: chain vs tree at equal token budget, {args.steps} steps")
    for key in rows[0]:
        table.add_column(key)
    for row in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    console = Console(width=140)
    console.print(
        f"calibration on the SFT model: trees (M={tree_cfg.trees}, N={tree_cfg.expansions}, "
        f"L={tree_cfg.iterations}, K={tree_cfg.keep}) {tree_cost.generated_tokens / tree_cost.leaves:.1f} tokens "
        f"per leaf; chains {chain_cost.generated_tokens / chain_cost.leaves:.1f} tokens per chain -> G={group}"
    )
    console.print(table)
    ratio = rows[1]["leaves_per_1k_tokens"] / rows[0]["leaves_per_1k_tokens"]
    console.print(f"tree / chain rollouts per 1k tokens: {ratio:.2f}x (target >= 1.5x)")
    out = Path(args.runs_dir) / f"algos-{stamp}.json"
    out.write_text(json.dumps({"rows": rows, "ratio": ratio, "group_size": group}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
