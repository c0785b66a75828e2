"""`agentrl train TASK --backend verl`: lay out a verl run in the agentrl run directory and start verl's trainer.

    runs/NAME/
      config.yaml          agentrl's resolved config, as for a local run
      sft_model/           the tiny default policy after its cold-start SFT (when model.path is not set)
      verl/
        agentrl.yaml       the config verl's workers read (absolute task and model paths)
        agent_loops.yaml   verl's agent-loop entry: agentrl's loop, with agentrl.yaml
        train.jsonl        one row per problem (verl's RLHFDataset reads JSON lines); val.jsonl likewise
        launch.sh          the exact command (run it again to resume: verl's resume_mode=auto)
        checkpoints/       verl's checkpoints

verl runs on the current Ray cluster: `RAY_ADDRESS` if set, else the one `ray start --head` started on this
machine, else a local one verl starts itself. Nothing in the task folder changes. Nothing here imports verl:
verl runs in its own interpreter (`verl.python`), which may differ from this one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import yaml

import agentrl
from agentrl.backends.verl_config import (
    CONFIG_ENV,
    VERL_MAIN,
    Lengths,
    VerlPaths,
    hydra_overrides,
    samples_per_prompt,
)
from agentrl.backends.verl_rows import AGENT_NAME, dataset_row
from agentrl.config import Config, config_to_yaml
from agentrl.errors import AgentRLError
from agentrl.rollout.formats import build_format, chat_prompt_ids
from agentrl.tasks import Problem, Task, task_reference
from agentrl.tools import build_tools
from agentrl.tools.base import function_schema

SOURCE_ROOT = Path(agentrl.__file__).resolve().parent.parent
"""The folder holding the `agentrl` package: put on verl's PYTHONPATH, so verl runs this very code."""


@dataclass
class VerlJob:
    """A planned verl run: files to write, and the command that starts verl's trainer."""

    cfg: Config
    task: Task
    paths: VerlPaths
    python: str
    overrides: list[str]
    train: list[Problem]
    val: list[Problem]

    def command(self) -> list[str]:
        return [self.python, "-m", VERL_MAIN, *self.overrides]

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {CONFIG_ENV: str(self.paths.agentrl_config), "PYTHONPATH": path}

    def script(self) -> str:
        """The launch as a shell command, one override per line."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env().items())
        lines = [f"{shlex.quote(self.python)} -m {VERL_MAIN}", *(shlex.quote(o) for o in self.overrides)]
        return f"cd {shlex.quote(str(self.paths.workdir))} && {env} \\\n  " + " \\\n    ".join(lines) + "\n"


def verl_python(cfg: Config) -> str:
    """The interpreter that runs verl: verl.python, $AGENTRL_VERL_PYTHON, this one if it has verl, ./.venv-verl."""
    if cfg.verl.python:
        return cfg.verl.python
    if os.environ.get("AGENTRL_VERL_PYTHON"):
        return os.environ["AGENTRL_VERL_PYTHON"]
    local = SOURCE_ROOT / ".venv-verl" / "bin" / "python"
    if importlib.util.find_spec("verl") is None and local.exists():
        return str(local)
    return sys.executable


def plan(cfg: Config, task: Task, run_dir: Path, tokenizer) -> VerlJob:
    """Problems, lengths and overrides of a verl run of `cfg` (the policy's `tokenizer` measures the prompts)."""
    if cfg.model.lora.r:
        raise AgentRLError(
            "model.lora is the local trainer's; on verl set its own: --set verl.overrides.actor_rollout_ref.model."
            "lora_rank=R (and lora_alpha, target_modules)"
        )
    run_dir = run_dir.resolve()
    model = Path(cfg.model.path).resolve() if cfg.model.path else run_dir / "sft_model"
    paths = VerlPaths(run_dir, model)
    per_step = cfg.rollout.prompts_per_step
    distinct = max(per_step, min(cfg.train.steps * per_step, cfg.train.problems))  # as many as the local trainer
    train = task.problems("train", distinct, seed=cfg.train.seed)
    val = task.problems("test", cfg.eval.problems, seed=0)
    prompt = max(len(ids) for ids in prompt_ids(cfg, task, tokenizer, train + val))
    response = cfg.model.max_length - prompt
    if response < cfg.rollout.max_new_tokens:
        raise AgentRLError(
            f"the longest prompt of {task.name} has {prompt} tokens, leaving {response} of model.max_length="
            f"{cfg.model.max_length} for the response: raise model.max_length"
        )
    overrides = hydra_overrides(cfg, paths, Lengths(prompt, response), len(train))
    return VerlJob(cfg, task, paths, verl_python(cfg), overrides, train, val)


def prompt_ids(cfg: Config, task: Task, tokenizer, problems: list[Problem]) -> list[list[int]]:
    """The prompts as the run's format renders them (native: with the tools' schemas, so the tools are built)."""
    if (cfg.rollout.format or task.spec.format) != "native":
        return [chat_prompt_ids(tokenizer, task.messages(p)) for p in problems]
    with ExitStack() as stack:
        schemas = [function_schema(tool) for tool in build_tools(task, cfg, stack).values()]
    native = build_format("native", tokenizer, schemas, cfg.rollout.tool_parser)
    return [native.prompt_ids(task.messages(p, instructions=True)) for p in problems]


def policy_tokenizer(cfg: Config, task: Task, path: Path | None = None):
    """The tokenizer of the policy verl will train (at `path`, else `model.path`), without building the model."""
    path = path or (Path(cfg.model.path) if cfg.model.path else None)
    if path is not None:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    from agentrl.models import train_tokenizer

    return train_tokenizer(task.vocabulary_sample, cfg.model.vocab_size)


def build_start_model(cfg: Config, task: Task, out: Path, log: Callable[[str], None]):
    """The tiny default policy after cold-start SFT on the task's demonstrations, saved to `out`; its tokenizer.

    The same start as a local run (`agentrl.train.trainer.train`): verl then does the RL."""
    import torch

    from agentrl.models import load_policy
    from agentrl.rollout.chain import AgentLoop
    from agentrl.tools import build_tools
    from agentrl.train.sft import expert_trajectories, sft

    model, tokenizer = load_policy(cfg.model, task.vocabulary_sample, cfg.train.seed, cfg.train.device)
    if cfg.sft.steps:
        with ExitStack() as stack:
            loop = AgentLoop(task, tokenizer, build_tools(task, cfg, stack), cfg.rollout, cfg.model.max_length)
            stack.callback(loop.pool.shutdown)
            demos = expert_trajectories(loop, task, cfg.sft.num_demos, cfg.train.seed)
        loss = sft(model, demos, cfg.sft, tokenizer.pad_token_id, torch.Generator().manual_seed(cfg.train.seed))
        log(f"cold-start SFT: {cfg.sft.steps} steps on {len(demos)} demonstrations, final loss {loss:.3f}")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return tokenizer


def write_files(job: VerlJob) -> None:
    """The verl run's inputs under runs/NAME/verl/ (see the module docstring)."""
    paths = job.paths
    paths.workdir.mkdir(parents=True, exist_ok=True)
    worker_cfg = job.cfg.model_copy(deep=True)
    worker_cfg.task = task_reference(job.task)
    worker_cfg.model.path = str(paths.model)
    paths.agentrl_config.write_text(config_to_yaml(worker_cfg))
    entry = {
        "name": AGENT_NAME,
        "_target_": "agentrl.backends.verl.AgentrlAgentLoop",
        "config_path": str(paths.agentrl_config),
    }
    paths.agent_loops.write_text(yaml.safe_dump([entry], sort_keys=False))
    for file, problems, evaluation in ((paths.train_file, job.train, False), (paths.val_file, job.val, True)):
        with file.open("w") as f:
            f.writelines(json.dumps(dataset_row(job.task, p, i, evaluation)) + "\n" for i, p in enumerate(problems))
    launch = paths.workdir / "launch.sh"
    launch.write_text("#!/bin/sh\n" + job.script())
    launch.chmod(0o755)


def describe(job: VerlJob, model_note: str) -> str:
    """What --dry-run prints: the plan in comments, then the command with verl's config as Hydra overrides."""
    cfg, paths = job.cfg, job.paths
    sampler = "trees" if cfg.rollout.sampler == "tree" else "samples"
    ray = os.environ.get("RAY_ADDRESS")
    lines = [
        f"# agentrl -> verl: {job.task.name}, {cfg.train.steps} steps x {cfg.rollout.prompts_per_step} prompts x "
        f"{samples_per_prompt(cfg)} {sampler}, advantage {cfg.algo.advantage}"
        + (f" + {'+'.join(cfg.algo.shaping)}" if cfg.algo.shaping else ""),
        f"# run directory: {paths.run_dir} (verl's files go under verl/: {len(job.train)} train and "
        f"{len(job.val)} val problems, agentrl.yaml, agent_loops.yaml, launch.sh)",
        f"# policy: {paths.model} ({model_note})",
        f"# Ray: RAY_ADDRESS={ray}" if ray else "# Ray: the cluster `ray start --head` started here, else a local one",
        f"# {cfg.verl.nnodes} node(s) x {cfg.verl.gpus_per_node} GPU(s), {cfg.verl.rollout_engine} rollout servers",
    ]
    return "\n".join(lines) + "\n" + job.script()


def check_verl(python: str) -> None:
    """Fail early, with the fix, when `python` cannot import verl (cheap: no import happens)."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('verl') is None)"
    try:
        found = subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except OSError:
        found = False
    if not found:
        raise AgentRLError(
            f"verl is not installed for {python}: `pip install -e '.[verl]'` in a separate environment (verl pins "
            "its own transformers), then --set verl.python=PATH (or AGENTRL_VERL_PYTHON, or `make verl-venv`)"
        )


def launch(job: VerlJob) -> int:
    """Run verl's trainer, its output streamed to this terminal; returns its exit code.

    Interrupted (Ctrl-C, SIGTERM), it interrupts verl, which shuts down the Ray cluster it started."""
    env = {**os.environ, **job.env()}
    with subprocess.Popen(job.command(), cwd=job.paths.workdir, env=env, start_new_session=True) as proc:
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            return proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def default_run_dir(cfg: Config, task: Task) -> Path:
    """Where `RunDir.create` will put this run (a dry run creates nothing)."""
    return Path(cfg.run.runs_dir) / (cfg.run.name or f"{task.name}-{time.strftime('%Y%m%d-%H%M%S')}")


def train_on_verl(
    cfg: Config,
    task: Task,
    run_dir: Path | None,
    *,
    dry_run: bool,
    resume: bool,
    echo: Callable[[str], None],
    log: Callable[[str], None],
) -> None:
    """The CLI's `train --backend verl`: print the plan (--dry-run), or prepare the run and launch verl."""
    run_dir = (run_dir or default_run_dir(cfg, task)).resolve()
    model_note = "model.path" if cfg.model.path else f"the tiny default model after {cfg.sft.steps} SFT steps"
    if dry_run:
        job = plan(cfg, task, run_dir, policy_tokenizer(cfg, task))
        echo(describe(job, model_note + ("" if cfg.model.path else ", built at launch")))
        return
    if not resume and (run_dir / "verl" / "launch.sh").exists():
        raise AgentRLError(f"run directory {run_dir} already holds a verl run: pass --resume, or another run.name")
    check_verl(verl_python(cfg))
    start = run_dir / "sft_model"
    if cfg.model.path:
        tokenizer = policy_tokenizer(cfg, task)
    elif (start / "config.json").is_file():
        tokenizer = policy_tokenizer(cfg, task, start)
    else:
        tokenizer = build_start_model(cfg, task, start, log)
    job = plan(cfg, task, run_dir, tokenizer)
    write_files(job)
    echo(describe(job, model_note))
    code = launch(job)
    if code != 0:
        raise AgentRLError(
            f"verl's trainer exited with code {code} (its log is above); once fixed, relaunch (it resumes): "
            f"{job.paths.workdir / 'launch.sh'}"
        )
