"""A sweep runs each point x seed as an ordinary run; killed mid-sweep and run again, it repeats no finished run,
resumes the interrupted one, and a run that fails is recorded while the others go on."""

from __future__ import annotations

import json
from contextlib import nullcontext

import pytest

from agentrl.config import config_to_yaml
from agentrl.errors import AgentRLError
from agentrl.sweep.export import export_results
from agentrl.sweep.report import write_report
from agentrl.sweep.runner import run_sweep, save_spec, sweep_runs, waits_for
from agentrl.sweep.spec import SweepSpec
from agentrl.train.trainer import Hooks
from tests.conftest import TINY_OVERRIDES

SETS = [*TINY_OVERRIDES, "train.steps=2", "sft.steps=10"]


def kill_at(run_name: str, step: int):
    """hooks_for that stops the sweep (as Ctrl-C does) after `step` of one run, and records which runs trained."""
    trained: list[str] = []

    def hooks_for(run):
        trained.append(run.run_name)

        def advance(metrics):
            if run.run_name == run_name and metrics.get("stage") == "rl" and metrics.get("step") == step:
                raise KeyboardInterrupt

        return nullcontext(Hooks(advance=advance))

    return hooks_for, trained


def rl_steps(run) -> list[int]:
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if r["stage"] == "rl"]


@pytest.mark.slow
def test_a_sweep_killed_mid_run_resumes_without_repeating_or_losing_a_run(tmp_path):
    spec = SweepSpec(name="s", task="arith-python", grid={"algo.advantage": ["grpo", "rloo"]}, seeds=2, sets=SETS)
    runs = sweep_runs(spec, tmp_path)
    assert [r.run_name for r in runs] == [
        "advantage-grpo/seed-0",
        "advantage-grpo/seed-1",
        "advantage-rloo/seed-0",
        "advantage-rloo/seed-1",
    ]
    hooks_for, trained = kill_at("advantage-rloo/seed-0", step=1)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path, hooks_for)
    assert trained == [r.run_name for r in runs[:3]]
    assert [r.state() for r in runs] == ["done", "done", "interrupted", "pending"]
    finished = {r.run_name: (r.path / "summary.json").read_text() for r in runs[:2]}

    hooks_for, trained = kill_at("none", step=0)
    assert run_sweep(spec, tmp_path, hooks_for) == {"done": 4, "failed": 0}
    assert trained == [r.run_name for r in runs[2:]]  # the finished runs are not trained again
    assert all((r.path / "summary.json").read_text() == finished[r.run_name] for r in runs[:2])
    assert all(rl_steps(r) == [1, 2] for r in runs)  # the interrupted run resumed: step 1 once, none lost
    config = (runs[2].path / "config.yaml").read_text()
    assert "advantage: rloo" in config and "seed: 0" in config

    report = write_report(spec, tmp_path)
    assert report["runs_done"] == 4 and [p["runs"] for p in report["points"]] == [2, 2]
    assert (tmp_path / "s" / "report.md").read_text().startswith("# Sweep s: arith-python")

    # the results without weights: the same report from the copy, and every run in it counts as done
    assert export_results(spec, tmp_path, tmp_path / "kept") == 4
    assert not list((tmp_path / "kept").rglob("*.safetensors"))
    assert all(r.state() == "done" for r in sweep_runs(spec, tmp_path / "kept"))
    assert write_report(spec, tmp_path / "kept") == report


@pytest.mark.slow
def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    spec = SweepSpec(name="f", task="arith-python", grid={"rollout.max_turns": [2, 0]}, seeds=1, sets=SETS)
    assert run_sweep(spec, tmp_path) == {"done": 1, "failed": 1}
    good, bad = sweep_runs(spec, tmp_path)
    assert good.state() == "done" and bad.state() == "failed"
    assert "max_turns" in bad.failure.read_text()


def test_a_different_spec_under_the_same_name_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.yaml").write_text("name: s\ntask: web-qa\n")
    spec = SweepSpec(name="s", task="arith-python")
    with pytest.raises(AgentRLError, match="holds a different sweep"):
        run_sweep(spec, tmp_path)


def test_a_spec_saved_before_a_field_was_added_still_resumes(tmp_path):
    spec = SweepSpec(name="s", task="arith-python", grid={"algo.advantage": ["grpo", "rloo"]}, sets=SETS)
    (tmp_path / "s").mkdir()
    saved = config_to_yaml(spec).replace("share_cold_start: true\n", "")
    (tmp_path / "s" / "sweep.yaml").write_text(saved)
    save_spec(spec, tmp_path)  # not refused
    with pytest.raises(AgentRLError, match="holds a different sweep"):
        save_spec(spec.model_copy(update={"share_cold_start": False}), tmp_path)


def summary(run) -> dict:
    return json.loads((run.path / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("share", [True, False])
def test_points_of_one_seed_share_one_cold_start(tmp_path, share):
    points = {"grpo": ["algo.advantage=grpo"], "rloo": ["algo.advantage=rloo"], "short-sft": ["sft.steps=5"]}
    spec = SweepSpec(name="c", task="arith-python", points=points, seeds=1, sets=SETS, share_cold_start=share)
    with_sft = []

    def hooks_for(run):
        return nullcontext(Hooks(stage=lambda name, total: name == "sft" and with_sft.append(run.run_name)))

    assert run_sweep(spec, tmp_path, hooks_for) == {"done": 3, "failed": 0}
    # rloo starts from grpo's SFT model and evaluation; short-sft's SFT differs, so it runs its own
    assert with_sft == (
        ["grpo/seed-0", "short-sft/seed-0"] if share else ["grpo/seed-0", "rloo/seed-0", "short-sft/seed-0"]
    )
    grpo, rloo, _ = sweep_runs(spec, tmp_path)  # shared or not, the same cold start
    assert summary(rloo)["pass@1_before"] == summary(grpo)["pass@1_before"]


@pytest.mark.slow
def test_matched_in_tokens_each_run_stops_once_it_has_spent_what_the_baseline_spent(tmp_path):
    spec = SweepSpec(
        name="m",
        task="arith-python",
        points={"g2": ["rollout.group_size=2"], "g4": ["rollout.group_size=4"]},
        seeds=1,
        sets=SETS,
        match="tokens",
        baseline="g4",
    )
    hooks_for, trained = kill_at("none", step=0)
    assert run_sweep(spec, tmp_path, hooks_for) == {"done": 2, "failed": 0}
    assert trained == ["g4/seed-0", "g2/seed-0"]  # the baseline first: its spend is the others' budget
    small, base = sweep_runs(spec, tmp_path)
    budget = summary(base)["rl_sampled_tokens"]
    assert (summary(base)["steps"], summary(base)["stopped_by"]) == (2, "steps")
    metrics = map(json.loads, (small.path / "metrics.jsonl").read_text().splitlines())
    spent = [r["sampled_tokens"] for r in metrics if r["stage"] == "rl"]
    assert summary(small)["stopped_by"] == "tokens" and summary(small)["rl_sampled_tokens"] == sum(spent)
    assert sum(spent[:-1]) < budget <= sum(spent)  # stopped after the step that reached the budget, not before
    config = (small.path / "config.yaml").read_text()
    assert f"max_sampled_tokens: {budget}" in config and "steps: 8" in config  # a cap of 4 x train.steps

    # killed after its last checkpoint but before its summary: run again, it evaluates and takes no extra step
    (small.path / "summary.json").unlink()
    assert run_sweep(spec, tmp_path) == {"done": 2, "failed": 0}
    assert len(rl_steps(small)) == len(spent) and summary(small)["rl_sampled_tokens"] == sum(spent)


@pytest.mark.slow
def test_runs_in_parallel_worker_processes_finish_and_log_to_their_own_files(tmp_path):
    spec = SweepSpec(name="p", task="arith-python", grid={"algo.advantage": ["grpo", "rloo"]}, seeds=1, sets=SETS)
    states = []
    counts = run_sweep(spec, tmp_path, on_state=lambda run, state: states.append((run.run_name, state)), parallel=2)
    assert counts == {"done": 2, "failed": 0}
    assert sorted(states) == [("advantage-grpo/seed-0", "done"), ("advantage-rloo/seed-0", "done")]
    for run in sweep_runs(spec, tmp_path):
        assert rl_steps(run) == [1, 2] and "held-out pass@1" in (run.path / "train.log").read_text()


def test_a_matched_run_waits_for_the_baseline_run_of_its_own_seed_only(tmp_path):
    points = {"g2": ["rollout.group_size=2"], "g4": ["rollout.group_size=4"]}
    spec = SweepSpec(name="w", task="arith-python", points=points, seeds=2, match="tokens", baseline="g4")
    runs = sweep_runs(spec, tmp_path)
    assert {r.run_name: getattr(waits_for(spec, r, runs), "run_name", None) for r in runs} == {
        "g2/seed-0": "g4/seed-0",
        "g2/seed-1": "g4/seed-1",
        "g4/seed-0": None,
        "g4/seed-1": None,
    }
    for unmatched in (spec.model_copy(update={"match": "steps"}), spec.model_copy(update={"budget": 1000.0})):
        assert all(waits_for(unmatched, r, runs) is None for r in runs)


@pytest.mark.slow
def test_matched_runs_in_parallel_each_spend_their_own_seeds_baseline(tmp_path):
    points = {"g2": ["rollout.group_size=2"], "g4": ["rollout.group_size=4"]}
    spec = SweepSpec(name="pm", task="arith-python", points=points, seeds=2, sets=SETS, match="tokens", baseline="g4")
    assert run_sweep(spec, tmp_path, parallel=2) == {"done": 4, "failed": 0}
    small0, small1, base0, base1 = sweep_runs(spec, tmp_path)
    for small, base in ((small0, base0), (small1, base1)):
        budget = summary(base)["rl_sampled_tokens"]
        assert f"max_sampled_tokens: {budget}" in (small.path / "config.yaml").read_text()
        assert summary(small)["rl_sampled_tokens"] >= budget
