"""`run_eval` end to end with a scripted model: pass@k from the samples, tools off, reports, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from agentrl.evals.runner import run_eval
from agentrl.tasks import load_task
from agentrl.tools.python import PythonTool


def _entry(report: dict, label: str) -> dict:
    return next(e for e in report["tasks"][0]["entries"] if e["label"] == label)


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_pass_at_k_and_pass_hat_k_of_known_counts(scripted, fast_figures, make_spec, fake_run):
    out, report = run_eval(make_spec(models=[str(fake_run)]))
    agg = report["tasks"][0]["entries"][0]["aggregate"]
    # every problem: n=3 samples, c=2 correct
    assert {k: v["mean"] for k, v in agg["pass@k"].items()} == pytest.approx({"1": 2 / 3, "2": 1.0, "3": 1.0})
    assert {k: v["mean"] for k, v in agg["pass^k"].items()} == pytest.approx({"1": 2 / 3, "2": 1 / 3, "3": 0.0})
    assert [p["c"] for p in report["tasks"][0]["entries"][0]["problems"]] == [2, 2, 2, 2]
    assert (agg["tool_calls"], agg["turns"], agg["code_use"]) == (1.0, 2.0, 1.0)
    assert agg["done"] == {"answer": 12}
    assert out == fake_run / "eval"


def test_without_tools_a_tool_call_is_not_run_and_ends_the_trajectory(
    scripted, fast_figures, make_spec, fake_run, monkeypatch
):
    runs = []
    original = PythonTool.run
    monkeypatch.setattr(PythonTool, "run", lambda self, args, state: runs.append(args) or original(self, args, state))
    _, report = run_eval(make_spec(models=[str(fake_run)], tools=[False]))
    agg = report["tasks"][0]["entries"][0]["aggregate"]
    assert runs == []
    assert agg["pass@k"]["3"]["mean"] == 0.0
    assert agg["done"] == {"tool_call_without_tools": 12}
    assert agg["turns"] == 1.0 and agg["tool_errors"] == 0
    assert scripted.calls == 2  # one generation round per batch: nothing was fed back


def test_compare_reports_differences_and_whether_they_are_outside_the_ci(scripted, fast_figures, make_spec):
    _, report = run_eval(make_spec(tools=[True, False]))
    rows = {(c["a"], c["b"], c["metric"]): c for c in report["tasks"][0]["comparisons"]}
    # the scripted model is the same for both checkpoints: no difference
    same = rows["tiny before RL", "tiny after RL (step 3)", "pass@1"]
    assert same["diff"] == 0.0 and not same["outside_ci"]
    # tools off loses every answer: a difference the interval excludes 0 from
    tools = rows["tiny after RL (step 3)", "tiny after RL (step 3) (no tools)", "pass@1"]
    assert tools["diff"] == pytest.approx(-2 / 3) and tools["outside_ci"] and tools["outside_baseline_ci"]
    assert ("tiny before RL (no tools)", "tiny after RL (step 3) (no tools)", "pass@1") in rows
    assert len({(a, b) for a, b, _ in rows}) == 4  # model effect x 2 tools settings, tools effect x 2 models


def test_a_rerun_skips_stored_samples(scripted, fast_figures, make_spec):
    out, first = run_eval(make_spec())
    calls = scripted.calls
    assert calls == 2 * 2 * 2  # 2 models x 2 batches x 2 rounds (code, answer)
    _, again = run_eval(make_spec())
    assert scripted.calls == calls
    assert len(_rows(out)) == 2 * 4 * 3
    assert again["reused_trajectories"] == 24 and again["sampled_trajectories"] == 0
    assert again["tasks"][0]["entries"] == first["tasks"][0]["entries"]


def test_more_problems_samples_only_the_new_ones(scripted, fast_figures, make_spec, fake_run):
    out, _ = run_eval(make_spec(models=[str(fake_run)], problems=2))
    _, report = run_eval(make_spec(models=[str(fake_run)], problems=4))
    assert report["sampled_trajectories"] == 6 and report["reused_trajectories"] == 6
    assert len(_rows(out)) == 12


def test_an_interrupted_eval_continues_where_it_stopped(scripted, fast_figures, make_spec, fake_run):
    spec = make_spec(models=[str(fake_run)], problems=6)
    scripted.crash_on_call = 4  # second round of the second batch
    with pytest.raises(KeyboardInterrupt):
        run_eval(spec)
    out = fake_run / "eval"
    assert len(_rows(out)) == 6  # the first batch: 2 problems x 3 samples
    scripted.calls, scripted.crash_on_call = 0, None
    _, report = run_eval(spec)
    assert scripted.calls == 2 * 2  # the two batches left
    assert report["sampled_trajectories"] == 12 and report["reused_trajectories"] == 6
    assert report["tasks"][0]["entries"][0]["aggregate"]["pass@k"]["1"]["mean"] == pytest.approx(2 / 3)


def test_a_batch_cut_short_by_a_crash_is_sampled_again(scripted, fast_figures, make_spec, fake_run):
    spec = make_spec(models=[str(fake_run)])
    out, _ = run_eval(spec)
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    (out / "samples.jsonl").write_text("".join(lines[:-2]) + lines[-2][:20])  # the last batch, half written
    scripted.calls = 0
    _, report = run_eval(spec)
    assert scripted.calls == 2  # one batch again, two rounds
    assert report["sampled_trajectories"] == 6
    assert [p["n"] for p in _entry(report, "tiny after RL (step 3)")["problems"]] == [3, 3, 3, 3]


def test_plain_models_go_to_a_new_eval_folder_that_a_rerun_finds_again(scripted, fast_figures, make_spec, fake_run):
    other = (fake_run / "checkpoints" / "step-000002").rename(fake_run.parent / "other-model")
    plain = [str(fake_run / "sft_model"), str(other)]
    out, _ = run_eval(make_spec(models=plain))
    assert out.parent == fake_run.parent and out.name.startswith("eval-arith-python-")
    again, report = run_eval(make_spec(models=plain))
    assert again == out and report["sampled_trajectories"] == 0
    different, _ = run_eval(make_spec(models=plain, n=2, k=[1]))
    assert different != out


def test_guard_events_are_counted_by_policy_and_penalise_the_reward(scripted, fast_figures, make_spec, tmp_path):
    task = Path(shutil.copytree(load_task("arith-python").root, tmp_path / "guarded"))
    spec = yaml.safe_load((task / "task.yaml").read_text())
    spec["policies"] = [
        {
            "id": "no-sums",
            "description": "Do not sum ranges.",
            "checker": {"type": "regex", "patterns": {"sum": r"sum\("}, "targets": ["arguments"]},
            "action": "penalize",
            "penalty": 0.25,
        }
    ]
    (task / "task.yaml").write_text(yaml.safe_dump(spec))
    _, report = run_eval(make_spec(tasks=[str(task)], problems=8, batch=4))
    entry = report["tasks"][0]["entries"][1]
    summing = [p for p in entry["problems"] if "sum of the integers" in p["prompt"]]
    assert summing, "the first 8 test problems hold a sum of a range"
    agg = entry["aggregate"]
    assert agg["guard_by_policy"] == {"no-sums": {"penalize": 3 * len(summing)}}
    assert agg["guard_violations"] == 3 * len(summing)
    assert all(p["reward"] == pytest.approx(2 / 3 - 0.25) for p in summing)
    assert agg["pass@k"]["1"]["mean"] == pytest.approx(2 / 3)  # penalties lower the reward, not the score
