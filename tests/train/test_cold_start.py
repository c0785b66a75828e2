"""A run started from another run's cold start continues exactly as if it had run SFT and the evaluation itself."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from agentrl.train.rundir import RunDir
from agentrl.train.start import cold_start_key, shares_cold_start
from agentrl.train.trainer import train

VOLATILE = {"seconds", "rollout_s"}


def _metrics(run: RunDir):
    return [{k: v for k, v in m.items() if k not in VOLATILE} for m in run.read_metrics()]


def _final_weights(run: RunDir):
    return load_file(sorted(run.checkpoints.glob("step-*"))[-1] / "model.safetensors")


def test_a_shared_cold_start_gives_the_run_an_unshared_one_would(make_config, arith_task):
    source_cfg = make_config("run.name=source", "algo.advantage=rloo")
    source = RunDir.create(source_cfg, arith_task.name)
    train(source_cfg, arith_task, source)
    assert source.rl_start.is_file()

    # the point under test differs from the source in RL settings only: its own cold start would be the source's
    alone_cfg = make_config("run.name=alone", "algo.kl_coef=0.05", "train.lr=1e-3", "rollout.group_size=6")
    alone = RunDir.create(alone_cfg, arith_task.name)
    alone_summary = train(alone_cfg, arith_task, alone)

    shared_cfg = make_config("run.name=shared", "algo.kl_coef=0.05", "train.lr=1e-3", "rollout.group_size=6")
    assert shares_cold_start(shared_cfg, source)
    shared = RunDir.create(shared_cfg, arith_task.name)
    shared_summary = train(shared_cfg, arith_task, shared, start_from=source)

    assert _metrics(shared) == _metrics(alone)  # sft and eval-before records included
    a, b = _final_weights(alone), _final_weights(shared)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for summary in (alone_summary, shared_summary):
        assert summary.pop("rl_seconds") > 0
    assert shared_summary == alone_summary
    # the shared run's folder is whole on its own: its KL reference and the next run's cold start
    assert (shared.sft_model / "config.json").is_file() and shared.rl_start.is_file()


@pytest.mark.parametrize(
    ("setting", "shared"),
    [
        ("algo.advantage=gtpo", True),
        ("rollout.sampler=tree", True),
        ("train.max_sampled_tokens=5000", True),
        ("rollout.temperature=0.7", True),  # the evaluation samples at eval.temperature
        ("sft.steps=7", False),
        ("eval.temperature=0.7", False),
        ("train.seed=1", False),
        ("rollout.max_new_tokens=20", False),
        ("model.hidden_size=48", False),
    ],
)
def test_only_rl_settings_keep_the_cold_start(make_config, setting, shared):
    assert (cold_start_key(make_config(setting)) == cold_start_key(make_config())) is shared


def test_a_run_without_a_finished_cold_start_is_no_source(make_config, arith_task, tmp_path):
    cfg = make_config("run.name=unstarted")
    run = RunDir.create(cfg, arith_task.name)
    assert not shares_cold_start(cfg, run)
