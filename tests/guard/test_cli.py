"""`agentrl guard policies | check | train | eval | make-bench` through typer's CliRunner."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from agentrl.errors import AgentRLError
from agentrl.guard.cli import app
from agentrl.guard.dataset import load_bench

from .guard_helpers import call, guard_of, policy, run_script
from .test_policy_spec import GOOD, task_with

runner = CliRunner()


@pytest.fixture()
def policy_task(tmp_path):
    return task_with(tmp_path, [{**GOOD, "severity": "high"}])


@pytest.fixture()
def rollouts(tmp_path, arith_task, tokenizer):
    """rollouts.jsonl with one violating and one clean trajectory, run with the guard logging in the loop."""
    guard = guard_of(policy("log"))
    bad, _ = run_script(arith_task, tokenizer, guard, [call("import socket"), "\\boxed{1}"])
    good, _ = run_script(arith_task, tokenizer, guard, [call("print(1)"), "\\boxed{1}"])
    path = tmp_path / "rollouts.jsonl"
    path.write_text("".join(json.dumps({"step": 7, **t.to_record()}) + "\n" for t in (bad, good)))
    return path


def test_policies_validates_and_shows_them(policy_task):
    result = runner.invoke(app, ["policies", str(policy_task.root)])
    assert result.exit_code == 0, result.output
    assert "no-net" in result.output and "python_ast" in result.output and "high" in result.output


def test_check_prints_a_table_of_violations(rollouts, policy_task):
    result = runner.invoke(app, ["check", str(rollouts), "--task", str(policy_task.root)])
    assert result.exit_code == 0, result.output
    assert "import of socket" in result.output and "high" in result.output
    assert "2 trajectories, 1 with violations (50.0%), 1 violations; by policy: no-net 1" in result.output


def test_check_can_fail_a_ci_job(rollouts, policy_task):
    run_dir = str(rollouts.parent)  # a run directory holds rollouts.jsonl
    result = runner.invoke(app, ["check", run_dir, "--task", str(policy_task.root), "--fail-on-violation"])
    assert result.exit_code == 1


def test_check_with_other_policies_or_the_recorded_events(rollouts, policy_task, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(
        yaml.safe_dump(
            {"policies": [{**GOOD, "id": "no-print", "checker": {"type": "python_ast", "calls": ["print"]}}]}
        )
    )
    result = runner.invoke(app, ["check", str(rollouts), "--task", str(policy_task.root), "--policies", str(other)])
    assert "by policy: no-print 1" in result.output
    recorded = runner.invoke(app, ["check", str(rollouts), "--task", "arith-python", "--recorded"])
    assert recorded.exit_code == 0 and "by policy: no-net 1" in recorded.output


def test_check_errors_are_user_errors(tmp_path, policy_task):
    missing = runner.invoke(app, ["check", str(tmp_path / "none.jsonl"), "--task", str(policy_task.root)])
    assert isinstance(missing.exception, AgentRLError) and "not found" in str(missing.exception)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"no": "steps"}\n')
    result = runner.invoke(app, ["check", str(bad), "--task", str(policy_task.root)])
    assert "bad.jsonl:1: not a trajectory record" in str(result.exception)


def test_train_then_eval_on_a_benchmark(small_bench, tmp_path):
    model = tmp_path / "model"
    trained = runner.invoke(
        app, ["train", "--bench", str(small_bench), "--out", str(model), "--epochs", "2", "--wordings-per-row", "1"]
    )
    assert trained.exit_code == 0, trained.output
    assert (model / "guard_model.json").is_file() and "threshold" in trained.output
    result = runner.invoke(app, ["eval", "--bench", str(small_bench), "--model", str(model), "--by-policy"])
    assert result.exit_code == 0, result.output
    for word in ("rules", "learned", "whole", "prefix", "precision", "F1", "ms/step", "no-network", "order-budget"):
        assert word in result.output


def test_eval_rejects_an_unknown_split(small_bench):
    result = runner.invoke(app, ["eval", "--bench", str(small_bench), "--split", "dev", "--checkers", "rules"])
    assert isinstance(result.exception, AgentRLError) and "use train or test" in str(result.exception)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the python episodes need the sandbox (bubblewrap)")
def test_make_bench_writes_a_loadable_benchmark(tmp_path):
    args = ["--python-train", "8", "--python-test", "4", "--browser-train", "8", "--browser-test", "4"]
    result = runner.invoke(app, ["make-bench", "--out", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    bench = load_bench(tmp_path)
    assert len(bench.episodes) == 24 and bench.rows["train"] and bench.rows["test"]
    assert {ep.done for ep in bench.episodes.values()} == {"answer"}
