"""agentrl against TRL's GRPOTrainer: the same GRPO run in both, one model directory, one benchmark.

Each comparison gives both frameworks the same model directory, the same prompts in the same order (the problems
agentrl's trainer draws for steps 1..N, fed to TRL unshuffled), the same reward function (the task's verifier on
the final message's answer), and the GRPO settings mapped knob by knob (printed first). Each framework runs in a
fresh process of its own, back to back, with the same torch threads; seeds alternate which goes first.

- single-turn: `benchmarks/tasks/add-direct` (sums answered as \\boxed{N}, no tools), on the tiny model after a
  short agentrl SFT (part `single`), and on SmolLM2-135M-Instruct's real weights (part `smollm2`, from the
  directory `agentrl models smollm2 DIR` writes; `--smollm2 DIR`, default runs/smollm2).
- multi-turn with a tool (part `multi`): arith-python with the python tool in Qwen2.5's own tool-calling format,
  on a Qwen2.5-Instruct directory (`--qwen DIR`; without one, a small Qwen2.5 fixture with Qwen2.5's chat
  template, taught to call the tool by a short agentrl SFT in that format). TRL runs it with `tools=[python]`, a
  function that runs the code in agentrl's local sandbox (a fresh session per call: a TRL tool keeps no state per
  trajectory, where agentrl keeps one session per trajectory).

Printed per framework: median seconds per RL step and its two halves (sampling with the reward; the update),
generated tokens per second of sampling, context tokens per second of update, peak RSS, the mean training reward
per step over seeds, and the mean tool calls per completion; then the advantages both compute for one batch of
rewards.

Run: `python benchmarks/vs_trl.py [--steps 5] [--seeds 2] [--parts single smollm2 multi] [--work DIR]` (needs TRL:
`pip install 'agentrl[trl]'`; `--work` keeps the SFT models, so that a second invocation times the runs only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

from rich.console import Console
from rich.table import Table

ADD_DIRECT = str(Path(__file__).parent / "tasks" / "add-direct")


@dataclass(frozen=True)
class Setting:
    """One comparison: the model, the task, and the GRPO knobs both frameworks get."""

    name: str
    model: str
    task: str
    steps: int
    prompts: int = 16
    group: int = 8
    max_new_tokens: int = 32
    max_turns: int = 1
    lr: float = 1e-4  # agentrl's default RL rate (docs/configuration.md#the-rl-learning-rate)
    temperature: float = 1.0
    clip_low: float = 0.2
    clip_high: float = 0.28
    max_grad_norm: float = 1.0
    format: str | None = None  # rollout.format; None: the task's

    def agentrl_overrides(self, seed: int, runs_dir: str) -> list[str]:
        return [
            f"model.path={self.model}",
            "sft.steps=0",
            f"train.steps={self.steps}",
            f"train.seed={seed}",
            f"train.lr={self.lr}",
            f"train.max_grad_norm={self.max_grad_norm}",
            "train.weight_decay=0",
            f"rollout.prompts_per_step={self.prompts}",
            f"rollout.group_size={self.group}",
            f"rollout.max_new_tokens={self.max_new_tokens}",
            f"rollout.max_turns={self.max_turns}",
            f"rollout.temperature={self.temperature}",
            "algo.advantage=grpo",
            "algo.loss_agg=token-mean",
            "algo.kl_coef=0",
            "algo.ppo_epochs=1",
            f"algo.minibatch_size={self.prompts * self.group}",
            f"algo.clip_low={self.clip_low}",
            f"algo.clip_high={self.clip_high}",
            "eval.problems=1",
            "eval.samples=1",
            f"run.runs_dir={runs_dir}",
            f"run.name={self.name}-agentrl-{seed}",
            *([f"rollout.format={self.format}"] if self.format else []),
        ]

    def trl_config(self, seed: int, out_dir: str) -> dict:
        """GRPOConfig's fields for the same run (TRL's defaults differ: see KNOBS)."""
        return {
            "output_dir": out_dir,
            "use_cpu": True,
            "bf16": False,
            "gradient_checkpointing": False,
            "num_generations": self.group,
            "per_device_train_batch_size": self.prompts * self.group,
            "gradient_accumulation_steps": 1,
            "max_steps": self.steps,
            "max_completion_length": self.completion_budget,
            "max_tool_calling_iterations": self.max_turns - 1,
            "temperature": self.temperature,
            "top_p": 1.0,
            "top_k": 0,
            "learning_rate": self.lr,
            "lr_scheduler_type": "constant",
            "warmup_steps": 0,
            "weight_decay": 0.0,
            "optim": "adamw_torch",
            "max_grad_norm": self.max_grad_norm,
            "beta": 0.0,
            "epsilon": self.clip_low,
            "epsilon_high": self.clip_high,
            "loss_type": "dapo",
            "scale_rewards": "group",
            "shuffle_dataset": False,
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": "none",
            "seed": seed,
            "dataloader_num_workers": 0,
        }

    @property
    def completion_budget(self) -> int:
        """TRL caps a whole multi-turn completion, tool results included; agentrl caps each message. Room for every
        message at its cap and a tool result of the same size between two messages."""
        return self.max_new_tokens * (2 * self.max_turns - 1)


KNOBS = [
    ("group size G", "rollout.group_size", "num_generations"),
    ("prompts per step", "rollout.prompts_per_step", "per_device_train_batch_size = prompts x G, accumulation 1"),
    ("tokens per message", "rollout.max_new_tokens (each message)", "max_completion_length (whole completion)"),
    ("turns", "rollout.max_turns", "max_tool_calling_iterations = turns - 1"),
    ("advantage", "algo.advantage=grpo: (r - mean) / (std + 1e-6)", "scale_rewards=group: (r - mean) / (std + 1e-4)"),
    ("loss", "algo.loss_agg=token-mean over the step", "loss_type=dapo: token mean over the generation batch"),
    ("clip", "algo.clip_low / clip_high", "epsilon / epsilon_high"),
    ("KL", "algo.kl_coef=0 (no reference model)", "beta=0 (no reference model)"),
    ("update", "one minibatch per step, ppo_epochs=1", "num_iterations=1 (ratio against detached log-probs)"),
    ("optimizer", "AdamW, weight_decay 0, clip-grad 1.0", "adamw_torch, lr_scheduler constant, no warmup"),
    ("precision", "train.dtype=float32", "bf16=False, use_cpu=True, gradient_checkpointing=False"),
    ("prompt order", "the trainer's seeded draw per step", "the same problems as a dataset, shuffle_dataset=False"),
]


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM). Not getrusage's ru_maxrss: across fork and exec it keeps the parent's RSS
    at the fork, which here (the SFT ran in the parent) would floor both frameworks' figures."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def summarize(steps: list[dict]) -> dict:
    """Per-step rows (reward, seconds, sample_s, generated, context, tool_calls) -> the table's figures."""
    sample_s = [r["sample_s"] for r in steps]
    update_s = [r["seconds"] - r["sample_s"] for r in steps]
    return {
        "step_s": statistics.median(r["seconds"] for r in steps),
        "sample_s": statistics.median(sample_s),
        "update_s": statistics.median(update_s),
        "generated_per_s": sum(r["generated"] for r in steps) / sum(sample_s),
        "update_tokens_per_s": sum(r["context"] for r in steps) / sum(update_s),
        "rewards": [r["reward"] for r in steps],
        "tool_calls": statistics.mean(r["tool_calls"] for r in steps),
        "peak_rss_mib": peak_rss_mib(),
    }


def run_agentrl(setting: Setting, seed: int, threads: int, runs_dir: str) -> dict:
    import torch

    from agentrl.config import build_config
    from agentrl.tasks import load_task
    from agentrl.train.rundir import RunDir
    from agentrl.train.trainer import train

    torch.set_num_threads(threads)
    task = load_task(setting.task)
    cfg = build_config([{"task": task.name}, task.spec.defaults], setting.agentrl_overrides(seed, runs_dir))
    run = RunDir.create(cfg, task.name)
    train(cfg, task, run)
    rows = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    return summarize(
        [
            {
                "reward": r["reward_mean"],
                "seconds": r["seconds"],
                "sample_s": r["rollout_s"],
                "generated": r["generated_tokens"],
                "context": r["context_tokens"],
                "tool_calls": r["tool_calls"],
            }
            for r in rows
            if r.get("stage") == "rl"
        ]
    )


def run_trl(setting: Setting, seed: int, threads: int, runs_dir: str) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from contextlib import ExitStack

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen3_template

    from agentrl.config import build_config
    from agentrl.models.loading import load_pretrained
    from agentrl.rollout.chain import AgentLoop
    from agentrl.rollout.parsers import FinalAnswer
    from agentrl.tasks import load_task
    from agentrl.tools import build_tools
    from agentrl.train.trainer import step_problems, train_pool

    torch.set_num_threads(threads)
    task = load_task(setting.task)
    cfg = build_config([{"task": task.name}, task.spec.defaults], setting.agentrl_overrides(seed, runs_dir))
    model, tokenizer = load_pretrained(setting.model)
    stack = ExitStack()
    tools = build_tools(task, cfg, stack)
    loop = AgentLoop(task, tokenizer, tools, cfg.rollout, cfg.model.max_length)
    stack.callback(loop.pool.shutdown)
    pool = train_pool(task, cfg)  # the trainer's own pool: cfg.train.seed is `seed`
    problems = [p for step in range(1, setting.steps + 1) for p in step_problems(pool, seed, step, setting.prompts)]
    by_prompt = {p.prompt: p for p in problems}
    native = loop.format.name == "native"

    captured: dict = {}

    def reward(prompts, completions, **_) -> list[float]:
        scores = []
        for prompt, completion in zip(prompts, completions, strict=True):
            parsed = loop.format.read(completion[-1]["content"] or "")
            answer = parsed.answer if isinstance(parsed, FinalAnswer) else None
            scores.append(task.verify(by_prompt[prompt[-1]["content"]], answer))
        captured.setdefault("rewards", scores)
        return scores

    def python(code: str):  # no return annotation, which TRL would add to the tool's schema
        state = tools["python"].open_state()
        try:
            return tools["python"].run({"code": code}, state).output
        finally:
            state.close()

    trl_tools = None
    if "python" in tools and native:
        spec = tools["python"]  # TRL reads the schema from the docstring: agentrl's tool's texts, word for word
        python.__doc__ = f"{spec.description}\n\nArgs:\n    code: {spec.schema['properties']['code']['description']}\n"
        trl_tools = [python]
    if trl_tools and getattr(tokenizer, "response_template", None) is None:
        tokenizer.response_template = qwen3_template  # Qwen's <tool_call> JSON, which TRL cannot match by name here
    messages = [task.messages(p, instructions=native) for p in problems]
    rendered = tokenizer.apply_chat_template(messages[0], tools=trl_tools, add_generation_prompt=True, tokenize=True)
    same_prompt = list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered) == loop.prompt_ids(problems[0])

    rows: list[dict] = []

    class Trainer(GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            start = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            context = int(out["prompt_mask"].sum() + out["completion_mask"].sum())
            rows.append({"sample_s": time.perf_counter() - start, "context": context})
            captured.setdefault("advantages", out["advantages"].tolist())
            return out

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                n = setting.prompts * setting.group
                rows[-1].update(
                    reward=logs["reward"],
                    seconds=logs["step_time"],
                    generated=logs["completions/mean_length"] * n,
                    tool_calls=logs.get("tools/call_frequency", 0.0),  # calls per completion, logged with tools only
                )
            return control

    trainer = Trainer(
        model=model,
        reward_funcs=reward,
        args=GRPOConfig(**setting.trl_config(seed, f"{runs_dir}/{setting.name}-trl-{seed}")),
        train_dataset=Dataset.from_list([{"prompt": m} for m in messages]),
        processing_class=tokenizer,
        tools=trl_tools,
        callbacks=[Record()],
    )
    for quiet in (PrinterCallback, ProgressCallback):  # the per-step log dicts: the table has what matters
        trainer.remove_callback(quiet)
    with stack:
        trainer.train()
    return summarize(rows) | {"same_prompt_ids": same_prompt, "first_batch": captured}


def in_child(fn, *args) -> dict:
    """`fn` in a fresh process (its own peak RSS, no state shared between the frameworks)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def prepare_models(args, work: str) -> list[Setting]:
    """The comparisons of `args.parts`, with their model directories (the tiny one: an agentrl SFT run)."""
    from shared_prefix import sft_model

    from agentrl.models.fixtures import build_fixture
    from agentrl.tasks import load_task

    settings = []
    if "single" in args.parts:
        tiny = sft_model(load_task(ADD_DIRECT), [f"sft.steps={args.sft_steps}"], f"{work}/sft-tiny")
        settings.append(Setting("single-turn tiny", str(tiny.sft_model), ADD_DIRECT, args.steps))
    if "smollm2" in args.parts:
        settings.append(Setting("single-turn smollm2", args.smollm2, ADD_DIRECT, args.steps, lr=1e-5, format="native"))
    if "multi" in args.parts:
        native = {"max_new_tokens": 48, "max_turns": 3, "lr": 1e-6, "format": "native"}
        multi = Setting("multi-turn qwen2.5", args.qwen or "", "arith-python", args.steps, **native)
        if args.qwen:
            settings.append(multi)
        else:
            fixture = build_fixture("qwen2.5", f"{work}/qwen2.5", **FIXTURE_SIZE)
            sft = [f"model.path={fixture}", "rollout.format=native", f"sft.steps={args.sft_steps}"]
            sft.append(f"rollout.max_new_tokens={multi.max_new_tokens}")
            taught = sft_model(load_task(multi.task), sft, f"{work}/sft-qwen")
            settings.append(replace(multi, name="multi-turn qwen2.5 fixture", model=str(taught.sft_model), lr=1e-4))
    return settings


FIXTURE_SIZE = {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_key_value_heads": 2}
"""A Qwen2.5 fixture: random weights, Qwen2.5's real chat template, a 1k-token vocabulary. An agentrl SFT in Qwen's
own tool-calling format (`--sft-steps`, as for the tiny model) teaches it to call the python tool."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--sft-steps", type=int, default=600, help="agentrl SFT of the tiny model and the fixture")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", nargs="+", choices=["single", "smollm2", "multi"], default=["single"])
    parser.add_argument("--smollm2", default="runs/smollm2", help="its directory (`agentrl models smollm2 DIR`)")
    parser.add_argument("--qwen", help="multi: a Qwen2.5-Instruct directory (default: a random-weight fixture)")
    parser.add_argument("--work", help="keeps the SFT models for the next invocation (default: a temporary directory)")
    args = parser.parse_args()
    console = Console(width=180)

    knobs = Table(title="the same GRPO run: agentrl setting vs TRL GRPOConfig")
    for column in ("knob", "agentrl", "TRL"):
        knobs.add_column(column)
    for row in KNOBS:
        knobs.add_row(*row)
    console.print(knobs)

    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or scratch
        settings = [replace(s, prompts=args.prompts, group=args.group) for s in prepare_models(args, work)]
        results: dict[tuple[str, str], list[dict]] = {}
        for setting in settings:
            for seed in range(args.seeds):
                order = [("agentrl", run_agentrl), ("TRL", run_trl)]
                for name, fn in order if seed % 2 == 0 else order[::-1]:
                    console.print(f"[dim]{setting.name}: {name}, seed {seed}[/dim]")
                    results.setdefault((setting.name, name), []).append(
                        in_child(fn, setting, seed, args.threads, f"{scratch}/runs")
                    )
        print_results(console, settings, results, args)


def print_results(console: Console, settings: list[Setting], results: dict, args) -> None:
    table = Table(title=f"GRPO, {args.steps} steps of {args.prompts} prompts x {args.group}, {args.seeds} seeds")
    columns = ("comparison", "framework", "s/step", "sampling s", "update s", "gen tok/s", "update tok/s")
    for column in (*columns, "peak RSS MiB", "reward/step", "tool calls"):
        table.add_column(column)
    for setting in settings:
        by = {name: results[(setting.name, name)] for name in ("agentrl", "TRL")}
        for name, runs in by.items():
            curve = [statistics.mean(r["rewards"][i] for r in runs) for i in range(args.steps)]
            table.add_row(
                setting.name,
                name,
                *(f"{statistics.median(r[key] for r in runs):.2f}" for key in ("step_s", "sample_s", "update_s")),
                f"{statistics.median(r['generated_per_s'] for r in runs):.0f}",
                f"{statistics.median(r['update_tokens_per_s'] for r in runs):.0f}",
                f"{max(r['peak_rss_mib'] for r in runs):.0f}",
                " ".join(f"{x:.2f}" for x in curve),
                f"{statistics.mean(r['tool_calls'] for r in runs):.2f}",
            )
        speedup = statistics.median(r["step_s"] for r in by["TRL"]) / statistics.median(
            r["step_s"] for r in by["agentrl"]
        )
        table.add_row(setting.name, "[bold]TRL / agentrl s/step[/bold]", f"[bold]{speedup:.2f}x[/bold]", *[""] * 7)
        if not all(r["same_prompt_ids"] for r in by["TRL"]):
            console.print(f"[yellow]{setting.name}: TRL's rendered prompt differs from agentrl's[/yellow]")
        console.print_json(json.dumps({setting.name: compare_advantages(by["TRL"][0]["first_batch"], args.group)}))
    console.print(table)


def compare_advantages(first_batch: dict, group: int) -> dict:
    """agentrl's GRPO advantages for the rewards of TRL's first batch against TRL's own: with agentrl's eps, and
    with TRL's (where the definitions match, they agree to float32 round-off)."""
    import torch

    from agentrl.algos.advantages import grpo_advantages

    rewards = torch.tensor(first_batch["rewards"])
    theirs = torch.tensor(first_batch["advantages"])
    ids = torch.arange(len(rewards)) // group
    return {
        "completions": len(rewards),
        "max |A_agentrl - A_trl|": float((grpo_advantages(rewards, ids) - theirs).abs().max()),
        "same, agentrl with eps=1e-4": float((grpo_advantages(rewards, ids, eps=1e-4) - theirs).abs().max()),
    }


if __name__ == "__main__":
    main()
