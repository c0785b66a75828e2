"""train.loggers: TensorBoard and W&B get exactly the records of metrics.jsonl, a resumed run replaces the steps
it runs again, and a tracker without its package fails at start in one line."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from agentrl.cli import app
from agentrl.errors import AgentRLError
from agentrl.train.loggers import WandbLogger
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import Hooks, train


def test_loggers_are_set_from_the_command_line():
    args = ["train", "arith-python", "--dry-run", "--set", "train.loggers=[jsonl,tensorboard]"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["train"]["loggers"] == ["jsonl", "tensorboard"]
    result = CliRunner().invoke(app, [*args[:-1], "train.loggers=[mlflow]"])
    assert isinstance(result.exception, AgentRLError) and "train.loggers.0: Input should be" in str(result.exception)


def tensorboard_scalars(run: RunDir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.tensorboard))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def jsonl_scalars(run: RunDir) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl's numbers as the trackers name them: `<stage>/<key>`, in order."""
    out: dict[str, list[tuple[int, float]]] = {}
    for record in run.read_metrics():
        for key, value in record.items():
            if key != "step" and isinstance(value, int | float):
                out.setdefault(f"{record['stage']}/{key}", []).append((record["step"], value))
    return out


def assert_same_scalars(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for tag, points in want.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in points], tag
        # event files hold float32; NaN (e.g. first_code_pos of a batch without code) equals NaN
        np.testing.assert_array_equal(
            np.float32([v for _, v in got[tag]]), np.float32([v for _, v in points]), err_msg=tag
        )


def test_tensorboard_mirrors_metrics_jsonl_through_a_crash_and_a_resume(make_config, arith_task):
    cfg = make_config(
        "run.name=tb", "train.loggers=[jsonl,tensorboard]", "train.steps=2", "train.checkpoint_every=2", "sft.steps=5"
    )
    run = RunDir.create(cfg, arith_task.name)

    def interrupt_after_step_1(metrics: dict) -> None:
        if metrics.get("step") == 1:  # logged, not yet checkpointed: the resumed run does step 1 again
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, arith_task, run, hooks=Hooks(advance=interrupt_after_step_1))
    assert [s for s, _ in tensorboard_scalars(run)["rl/reward_mean"]] == [1]  # written before the crash
    train(cfg, arith_task, RunDir(run.path), resume=True)

    want = jsonl_scalars(run)
    assert [s for s, _ in want["rl/reward_mean"]] == [1, 2]
    assert {"sft/sft_loss", "eval_before/pass@1", "eval_after/pass@1", "rl/guard/violation_rate"} <= want.keys()
    assert_same_scalars(tensorboard_scalars(run), want)


@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_a_tracker_without_its_package_fails_at_start_in_one_line(make_config, arith_task, monkeypatch, name):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda pkg, *a: None if pkg == name else find_spec(pkg, *a))
    cfg = make_config("run.name=missing", f"train.loggers=[{name}]")
    run = RunDir.create(cfg, arith_task.name)
    with pytest.raises(AgentRLError) as err:
        train(cfg, arith_task, run)
    assert str(err.value) == f"train.loggers: {name} needs the {name} package: pip install 'agentrl[{name}]'"
    assert not run.metrics.exists() and not run.tensorboard.exists() and not run.wandb_id.exists()


def wandb_session(cfg, run: RunDir, monkeypatch) -> str:
    """One session of a run with W&B: its settings and what it sends; returns the W&B run id."""
    logger = WandbLogger(cfg, run)
    wb = logger.run
    assert (wb.project, wb.name, wb.settings.mode) == ("agentrl", run.path.name, "offline")
    assert wb.config["train"]["loggers"] == ["wandb"] and wb.dir.startswith(str(run.path / "wandb"))
    sent, log = [], wb.log
    monkeypatch.setattr(wb, "log", lambda data, step: (sent.append((step, data)), log(data, step=step)))
    logger.log(0, {"stage": "sft", "sft_loss": 1.5, "demos": 64})
    logger.log(1, {"stage": "rl", "reward_mean": 0.25, "guard/errors": 0.0, "note": "not a number"})
    assert sent == [(0, {"sft/sft_loss": 1.5, "sft/demos": 64}), (1, {"rl/reward_mean": 0.25, "rl/guard/errors": 0})]
    # W&B commits a step when the next one starts (and the last one on close)
    assert {k: v for k, v in dict(wb.summary).items() if k[0] != "_"} == {"sft/sft_loss": 1.5, "sft/demos": 64}
    logger.close()
    return wb.id


def test_wandb_runs_offline_in_the_run_directory_and_a_resume_continues_the_same_run(
    make_config, arith_task, tmp_path, monkeypatch
):
    pytest.importorskip("wandb")
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    cfg = make_config("run.name=wb", "train.loggers=[wandb]")
    run = RunDir.create(cfg, arith_task.name)
    first, resumed = wandb_session(cfg, run, monkeypatch), wandb_session(cfg, run, monkeypatch)
    assert first == resumed == run.wandb_id.read_text()
    assert len(list((run.path / "wandb").glob(f"offline-run-*-{first}"))) == 2  # one folder per session
