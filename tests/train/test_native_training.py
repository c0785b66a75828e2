"""Real architectures with their own chat templates train end to end in native format, and resume exactly."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from agentrl.models.fixtures import FIXTURES, build_fixture
from agentrl.models.loading import load_tokenizer
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import Hooks, train


class Crash(Exception):
    pass


def crash_after_step_1(metrics):
    if metrics.get("stage") == "rl" and metrics.get("step") == 1:
        raise Crash


@pytest.mark.slow
@pytest.mark.parametrize("kind", FIXTURES)
def test_a_fixture_trains_in_native_format_and_resumes_exactly(kind, make_config, arith_task, tmp_path):
    model_dir = build_fixture(kind, tmp_path / kind)
    sets = [f"model.path={model_dir}", "rollout.format=native", "model.max_length=1024", "train.steps=2"]
    sets += ["rollout.max_new_tokens=40", "sft.num_demos=16", "sft.steps=6", "sft.batch_size=4", "algo.kl_coef=0.05"]
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
