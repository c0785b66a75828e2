"""Real architectures with their own chat templates train end to end in native format, and resume exactly: on
the hf engine here, and on the vllm engine in its own venv where one exists (`make vllm-venv`): one fixture with
full fine-tuning, one with LoRA, each a vLLM start of minutes on a CPU (the templates are the hf tests' part)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from safetensors.torch import load_file
from transformers import GenerationConfig

from agentrl.models.fixtures import FIXTURES, build_fixture
from agentrl.models.loading import load_tokenizer, stop_token_ids
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import Hooks, train
from tests.engines.harness import REPO, SKIP_REASON, vllm_python

SETTINGS = ["rollout.format=native", "model.max_length=1024", "rollout.max_new_tokens=40", "sft.num_demos=16"]
SETTINGS += ["sft.steps=6", "sft.batch_size=4", "algo.kl_coef=0.05"]


class Crash(Exception):
    pass


def crash_after_step_1(metrics):
    if metrics.get("stage") == "rl" and metrics.get("step") == 1:
        raise Crash


@pytest.mark.slow
@pytest.mark.parametrize("kind", FIXTURES)
def test_a_fixture_trains_in_native_format_and_resumes_exactly(kind, make_config, arith_task, tmp_path):
    model_dir = build_fixture(kind, tmp_path / kind)
    sets = [f"model.path={model_dir}", "train.steps=2", *SETTINGS]
    whole_cfg = make_config("run.name=whole", *sets)
    whole = RunDir.create(whole_cfg, arith_task.name)
    summary = train(whole_cfg, arith_task, whole)
    assert summary["steps"] == 2 and 0.0 <= summary["pass@1_after"] <= 1.0

    broken_cfg = make_config("run.name=broken", *sets)
    broken = RunDir.create(broken_cfg, arith_task.name)
    with pytest.raises(Crash):
        train(broken_cfg, arith_task, broken, hooks=Hooks(advance=crash_after_step_1))
    train(broken_cfg, arith_task, broken, resume=True)

    last = "checkpoints/step-000002/model.safetensors"
    whole_weights, resumed_weights = load_file(whole.path / last), load_file(broken.path / last)
    assert all((whole_weights[k] == resumed_weights[k]).all() for k in whole_weights)
    assert [m["step"] for m in whole.read_metrics() if m["stage"] == "rl"] == [1, 2]
    with whole.rollouts.open() as f:
        first = json.loads(f.readline())
    assert '"name": "python"' in load_tokenizer(model_dir).decode(first["prompt_ids"])  # the template's tools


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize(
    "kind,extra",
    [("qwen2.5", []), ("llama3.1", ["model.lora.r=4"])],  # full fine-tuning, and LoRA (merged at each sync)
    ids=["qwen2.5", "llama3.1-lora"],
)
def test_a_fixture_trains_in_native_format_on_the_vllm_engine(kind, extra, tmp_path):
    python = vllm_python()
    if python is None:
        pytest.skip(SKIP_REASON)
    heads = {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32}  # vLLM's CPU kernels: >= 32
    model_dir = build_fixture(kind, tmp_path / kind, **heads)
    sets = [f"model.path={model_dir}", "engine.backend=vllm", "run.name=vllm", f"run.runs_dir={tmp_path}", *SETTINGS]
    sets += ["rollout.prompts_per_step=2", "rollout.group_size=2", "eval.problems=2", "eval.samples=2", *extra]
    env = {**os.environ, "VLLM_CPU_OMP_THREADS_BIND": "0"}

    def agentrl(*args: str) -> None:
        command = [str(python.parent / "agentrl"), "train", "arith-python", "-q", *args]
        run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=700)
        assert run.returncode == 0, f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"

    agentrl(*[a for s in [*sets, "train.steps=1"] for a in ("--set", s)])
    agentrl("--resume", *[a for s in [*sets, "train.steps=2"] for a in ("--set", s)])
    run = RunDir(tmp_path / "vllm")
    assert [m["step"] for m in run.read_metrics() if m["stage"] == "rl"] == [1, 2]
    with run.rollouts.open() as f:
        first = json.loads(f.readline())
    stops = GenerationConfig.from_pretrained(model_dir).eos_token_id  # the engine stops at the model's EOS ids too
    end_of_turn = set(stop_token_ids(load_tokenizer(model_dir))) | set(stops if isinstance(stops, list) else [stops])
    assert first["steps"][0]["action_ids"][-1] in end_of_turn or first["steps"][0]["finish"] == "length"
    weights = {p.name for p in (run.checkpoints / "step-000002").iterdir()}
    assert ("adapter_model.safetensors" in weights) == bool(extra)  # a LoRA run checkpoints its adapter only
