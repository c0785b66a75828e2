"""Kill a run after step k, resume it, and get the same metrics and weights as an uninterrupted run.

The runs use a reference-KL term, and by the time of the crash the step-0 checkpoint has been pruned: the
policy RL started from must still be on disk (run.sft_model) for the resumed run's reference.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from agentrl.config import build_config
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import Hooks, train

VOLATILE = {"seconds", "rollout_s"}


class Crash(Exception):
    pass


def _rl_metrics(run: RunDir):
    return [{k: v for k, v in m.items() if k not in VOLATILE} for m in run.read_metrics() if m["stage"] == "rl"]


def _final_weights(run: RunDir):
    last = sorted(run.checkpoints.glob("step-*"))[-1]
    return load_file(last / "model.safetensors")


@pytest.mark.parametrize(
    "sampling",
    [
        [],
        # the allocation's success estimates, the refill draws and the response bank carry across the crash
        ["rollout.allocation=knapsack", "rollout.max_group=6", "algo.filter_zero_variance=true", "algo.max_refills=1"]
        + ["algo.reuse_responses=true", "train.problems=4"],  # 4 problems: prompts recur, estimates carry over
        # trees dealt out in stages, each prompt until its leaves' rewards differ
        ["rollout.sampler=tree", "algo.advantage=tree_grpo", "rollout.allocation=adaptive", "rollout.tree.trees=2"]
        + ["rollout.presample=1", "rollout.min_group=1", "rollout.tree.iterations=1", "rollout.tree.keep=2"],
    ],
    ids=["uniform", "knapsack+filter+reuse", "tree+adaptive"],
)
def test_resume_after_a_crash_matches_an_unbroken_run(make_config, arith_task, sampling):
    whole_cfg = make_config("run.name=whole", "algo.kl_coef=0.05", *sampling)
    whole = RunDir.create(whole_cfg, arith_task.name)
    summary = train(whole_cfg, arith_task, whole)

    def crash_after_step_2(metrics):
        if metrics.get("step") == 2 and metrics.get("stage") == "rl":
            raise Crash

    broken_cfg = make_config("run.name=broken", "algo.kl_coef=0.05", *sampling)
    broken = RunDir.create(broken_cfg, arith_task.name)
    with pytest.raises(Crash):
        train(broken_cfg, arith_task, broken, hooks=Hooks(advance=crash_after_step_2))
    assert [m["step"] for m in _rl_metrics(broken)] == [1, 2]
    assert not (broken.checkpoints / "step-000000").exists() and (broken.sft_model / "config.json").is_file()
    # a half-written line from the moment of the crash is dropped on resume
    with broken.metrics.open("a") as f:
        f.write('{"step": 3, "stage": "rl", "reward_mean"')
    resumed = RunDir.find(broken_cfg, arith_task.name)
    resumed_summary = train(resumed.saved_config([]), arith_task, resumed, resume=True)

    assert _rl_metrics(resumed) == _rl_metrics(whole)
    assert all("kl" in m and "groups_with_spread" in m for m in _rl_metrics(resumed))
    if "algo.filter_zero_variance=true" in sampling:
        assert all({"groups_dropped", "refills", "reused"} <= m.keys() for m in _rl_metrics(resumed))
        assert "reuse" in json.loads((sorted(resumed.checkpoints.glob("step-*"))[-1] / "state.json").read_text())
        problems = {json.loads(line)["problem_id"] for line in resumed.rollouts.read_text().splitlines()}
        assert len(problems) <= 4
    a, b = _final_weights(whole), _final_weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed_summary.pop("rl_seconds") > 0 and summary.pop("rl_seconds") > 0  # wall-clock: not repeatable
    assert resumed_summary == summary
    rollout_steps = [json.loads(line)["step"] for line in resumed.rollouts.read_text().splitlines()]
    assert rollout_steps == [json.loads(line)["step"] for line in whole.rollouts.read_text().splitlines()]


def test_run_directory_holds_config_metrics_rollouts_checkpoints(make_config, arith_task):
    cfg = make_config("run.name=layout")
    run = RunDir.create(cfg, arith_task.name)
    summary = train(cfg, arith_task, run)
    assert build_config([yaml.safe_load(run.config.read_text())]) == cfg
    stages = [m["stage"] for m in run.read_metrics()]
    assert stages == ["sft", "eval_before", "rl", "rl", "rl", "eval_after"]
    step = next(m for m in run.read_metrics() if m["stage"] == "rl")
    for key in (
        "reward_mean",
        "pass_rate",
        "loss",
        "entropy",
        "approx_kl",
        "generated_tokens",
        "groups_with_spread",
        "tool_calls",
        "seconds",
    ):
        assert key in step
    record = json.loads(run.rollouts.read_text().splitlines()[0])
    assert {"step", "prompt_ids", "steps", "reward", "answer"} <= record.keys()
    assert record["steps"][0]["action_ids"] and "action_text" in record["steps"][0]
    assert len(record["steps"][0]["action_logprobs"]) == len(record["steps"][0]["action_ids"])
    assert [p.name for p in sorted(run.checkpoints.iterdir())] == ["step-000002", "step-000003"]
    assert 0.0 <= summary["pass@1_before"] <= 1.0 and json.loads(run.summary.read_text()) == summary
    with pytest.raises(Exception, match="already holds a run"):
        RunDir.create(cfg, arith_task.name)
