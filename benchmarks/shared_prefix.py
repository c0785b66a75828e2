"""The update with shared prefixes computed once against each trajectory on its own (train.shared_prefix=off), on
the same sampled trees, in the same run: packs under a tree mask (mask) and packs run segment by segment on cached
keys and values (segments).

Per task: a short SFT of the task's default tiny model, then one step of Tree-GRPO trees (M,N,L = 2,4,2 by
default, every leaf kept) sampled from it; the same trajectories are updated with each setting, each time from
the same weights and a fresh AdamW. Printed: the share of context tokens that are shared (a shared token is counted
once per trajectory that holds it), tokens the forward passes compute, the median update seconds (the reference's
log-probs and the PPO update, one minibatch: its own pass gives the old log-probs), and the ratios to each
trajectory alone. Chains of the same prompts (G=8, sharing their prompt only) are shown beside.

Run: `python benchmarks/shared_prefix.py [--tasks arith-python web-qa] [--repeats 5]` (web-qa's SFT demos drive a
real browser).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from timing import median_time
from tree_sampling import sampling_loop, with_rollout

from agentrl.config import build_config, config_to_yaml
from agentrl.models.loading import load_pretrained
from agentrl.tasks import load_task
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import rl_step, sample, train
from agentrl.trajectory import Trajectory


def sft_model(task, overrides: list[str], runs_dir: str) -> RunDir:
    """A zero-step run: SFT on the task's expert demonstrations only. One that finished in `runs_dir` with the same
    config is reused (a benchmark's work directory keeps it between invocations)."""
    cfg = build_config(
        [{"task": task.name}, task.spec.defaults],
        [*overrides, "train.steps=0", "eval.problems=1", "eval.samples=1", f"run.runs_dir={runs_dir}", "run.name=sft"],
    )
    done = RunDir(Path(runs_dir) / "sft")
    if done.summary.is_file() and done.config.read_text() == config_to_yaml(cfg):
        return done
    run = RunDir.create(cfg, task.name)
    train(cfg, task, run)
    return run


def sampled(task, cfg, model, tokenizer, sampler: str) -> list[Trajectory]:
    """One step's trajectories of `sampler` (tree or chain) from `model`."""
    problems = task.problems("train", cfg.rollout.prompts_per_step, seed=1)
    with sampling_loop(task, cfg, model, tokenizer) as (loop, policy):
        trajs, _ = sample(loop, problems, policy, with_rollout(cfg, sampler=sampler), step=1)
    return trajs


def time_update(model, trajs, cfg, pad_id: int, shared: str, repeats: int) -> tuple[float, dict]:
    """Median seconds of one rl_step from `model`'s weights with a fresh optimizer, and its metrics."""
    setting = cfg.model_copy(update={"train": cfg.train.model_copy(update={"shared_prefix": shared})})
    ref = copy.deepcopy(model).eval()
    metrics: dict = {}

    def step() -> None:
        policy = copy.deepcopy(model).train()
        optimizer = torch.optim.AdamW(policy.parameters(), lr=setting.train.lr)
        metrics.update(rl_step(policy, ref, optimizer, trajs, setting, pad_id, torch.Generator().manual_seed(0)))

    step()  # warm-up
    return median_time(step, repeats), metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["arith-python", "web-qa"])
    parser.add_argument("--shape", default="2,4,2", help="tree M,N,L; every leaf is kept")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--sft-steps", type=int, default=300)
    parser.add_argument("--demos", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    m, n, depth = (int(x) for x in args.shape.split(","))

    table = Table(title=f"update with shared prefixes computed once vs each trajectory alone, trees {args.shape}")
    columns = ("task", "sampler", "trajectories", "shared", "forward tokens", "alone s", "mask s", "segments s")
    for column in (*columns, "mask speed-up", "segments speed-up"):
        table.add_column(column)
    with tempfile.TemporaryDirectory() as runs_dir:
        for name in args.tasks:
            task = load_task(name)
            overrides = [
                f"sft.steps={args.sft_steps}",
                f"sft.num_demos={args.demos}",
                f"rollout.prompts_per_step={args.prompts}",
                f"rollout.tree.trees={m}",
                f"rollout.tree.expansions={n}",
                f"rollout.tree.iterations={depth}",
                f"rollout.tree.keep={1 + n * depth}",
                "algo.kl_coef=0.001",
                f"algo.minibatch_size={args.prompts * m * (1 + n * depth)}",
            ]
            run = sft_model(task, overrides, f"{runs_dir}/{name}")
            cfg = build_config([{"task": name}, task.spec.defaults], overrides)
            model, tokenizer = load_pretrained(run.sft_model)
            model.eval()
            for sampler in ("tree", "chain"):
                trajs = sampled(task, cfg, model, tokenizer, sampler)
                alone_s, alone = time_update(model, trajs, cfg, tokenizer.pad_token_id, "off", args.repeats)
                mask_s, shared = time_update(model, trajs, cfg, tokenizer.pad_token_id, "mask", args.repeats)
                segments_s, _ = time_update(model, trajs, cfg, tokenizer.pad_token_id, "segments", args.repeats)
                context = shared["context_tokens"]
                table.add_row(
                    name,
                    sampler if sampler == "tree" else f"chain G={cfg.rollout.group_size}",
                    str(len(trajs)),
                    f"{1 - shared['forward_tokens'] / context:.0%}",
                    f"{alone['forward_tokens']:,} -> {shared['forward_tokens']:,}",
                    f"{alone_s:.2f}",
                    f"{mask_s:.2f}",
                    f"{segments_s:.2f}",
                    f"{alone_s / mask_s:.2f}x",
                    f"{alone_s / segments_s:.2f}x",
                )
    console = Console(width=150)
    console.print(table)
    console.print(
        f"shared: share of context tokens computed once instead of once per trajectory; seconds are medians of "
        f"{args.repeats} updates (reference log-probs + PPO step), threads {torch.get_num_threads()}"
    )


if __name__ == "__main__":
    main()
