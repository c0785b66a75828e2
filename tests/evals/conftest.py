"""Eval fixtures: a run directory as the trainer leaves it (tiny models), and a scripted stand-in for the model."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from agentrl.config import ModelConfig
from agentrl.engines import Generation
from agentrl.evals.spec import build_spec
from agentrl.models.tiny import build_tiny_model
from agentrl.rollout.chain import AgentLoop

TINY = ModelConfig(hidden_size=32, num_layers=1, intermediate_size=64, num_heads=2)
METRICS = [
    {"step": 0, "stage": "sft", "sft_loss": 1.5},
    {"step": 0, "stage": "eval_before", "pass@1": 0.25},
    *[
        {"step": s, "stage": "rl", "reward_mean": 0.2 + 0.1 * s, "pass_rate": 0.2 + 0.1 * s, "tool_calls": 1.0}
        | {"code_use_ratio": 1.0, "entropy": 0.3 - 0.05 * s, "approx_kl": 0.01 * s, "response_len": 40.0 + s}
        for s in (1, 2, 3)
    ],
    {"step": 3, "stage": "eval_after", "pass@1": 0.5},
]
FAST = ["rollout.max_new_tokens=8", "sandbox.timeout=5", "train.threads=1"]


def _save(tokenizer, path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    build_tiny_model(tokenizer, TINY).save_pretrained(path)
    tokenizer.save_pretrained(path)


@pytest.fixture(scope="session")
def run_template(tmp_path_factory, tokenizer) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    _save(tokenizer, run / "sft_model", seed=0)
    for step in (2, 3):
        ckpt = run / "checkpoints" / f"step-{step:06d}"
        _save(tokenizer, ckpt, seed=step)
        (ckpt / "state.json").write_text(json.dumps({"step": step}))
    (run / "config.yaml").write_text("task: arith-python\n")
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in METRICS))
    return run


@pytest.fixture()
def fake_run(run_template, tmp_path) -> Path:
    """A fresh copy of a run directory: sft_model/, checkpoints step 2 and 3, config.yaml, metrics.jsonl."""
    return Path(shutil.copytree(run_template, tmp_path / "runs" / "tiny"))


class ScriptedModel:
    """Stands in for the model: the task's expert messages (a python call, then the boxed answer), with the
    answer spoiled in every third sample of a problem, so each problem of n=3 samples has c=2 correct.
    Counts the policy calls (one per generation round) and can raise on a given call, like a crash."""

    def __init__(self):
        self.calls = 0
        self.crash_on_call: int | None = None

    def policy(self, loop: AgentLoop):
        problems = {p.id: p for p in loop.task.problems("test", 64, seed=0)}
        seen: dict[str, int] = {}
        spoiled: dict[int, bool] = {}

        def generate(trajs):
            self.calls += 1
            if self.calls == self.crash_on_call:
                raise KeyboardInterrupt
            out = []
            for t in trajs:
                script = loop.task.demo(problems[t.problem_id])
                if not t.steps:
                    seen[t.problem_id] = seen.get(t.problem_id, -1) + 1
                    spoiled[id(t)] = seen[t.problem_id] % 3 == 2
                message = script[len(t.steps)]
                final = len(t.steps) == len(script) - 1
                if final and spoiled[id(t)]:
                    message = "\\boxed{-1}"
                ids = loop.format.message_ids(message, final)
                out.append(Generation(ids, [0.0] * len(ids), "eos"))
            return out

        return generate


def script(monkeypatch: pytest.MonkeyPatch) -> ScriptedModel:
    model = ScriptedModel()
    monkeypatch.setattr(AgentLoop, "model_policy", lambda self, engine, params: model.policy(self))
    return model


@pytest.fixture()
def scripted(monkeypatch) -> ScriptedModel:
    return script(monkeypatch)


@pytest.fixture()
def fast_figures(monkeypatch) -> None:
    """Skip drawing (about a second per report): every figure is a 1x1 PNG. For tests not about the figures."""
    from PIL import Image

    from agentrl.evals import report
    from agentrl.evals.plots import figure_sources

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    monkeypatch.setattr(report, "report_figures", lambda r: dict.fromkeys(figure_sources(r), buffer.getvalue()))


def small_spec(run: Path, **fields):
    """An eval spec over a fake run, before and after RL, with small defaults; keyword arguments override."""
    data = {
        "tasks": ["arith-python"],
        "models": [str(run / "sft_model"), str(run)],
        "n": 3,
        "k": [1, 2, 3],
        "problems": 4,
        "batch": 2,
        "set": [*FAST, f"run.runs_dir={run.parent}"],
    }
    return build_spec(data | fields)


@pytest.fixture()
def make_spec(fake_run):
    return lambda **fields: small_spec(fake_run, **fields)
