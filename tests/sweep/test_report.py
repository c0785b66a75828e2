"""The sweep report's means, intervals and paired differences, against a hand computation on a toy sweep."""

from __future__ import annotations

import json
import math

import pytest

from agentrl.sweep.report import build_report, report_markdown, t_interval, write_report
from agentrl.sweep.runner import sweep_runs
from agentrl.sweep.spec import SweepSpec

T_975_DF2 = 4.302652729911275  # Student's t, 97.5th percentile, 2 degrees of freedom (printed tables)


def test_the_t_interval_of_three_values_is_the_textbook_one():
    values = [0.2, 0.3, 0.7]
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    cell = t_interval(values)
    assert cell["mean"] == pytest.approx(mean)
    assert cell["low"] == pytest.approx(mean - T_975_DF2 * sd / math.sqrt(3))
    assert cell["high"] == pytest.approx(mean + T_975_DF2 * sd / math.sqrt(3))
    assert t_interval([0.5]) == {"mean": 0.5, "low": None, "high": None, "n": 1}


def fake_run(path, before: float, after: float, tokens: list[int]) -> None:
    path.mkdir(parents=True)
    summary = {"pass@1_before": before, "pass@1_after": after, "steps": len(tokens), "stopped_by": "steps"}
    summary |= {"rl_sampled_tokens": sum(tokens), "rl_seconds": 2.0 * len(tokens)}
    (path / "summary.json").write_text(json.dumps(summary))
    records = [{"step": 0, "stage": "eval_before", "pass@1": before}]
    spreads = {"groups_with_spread": 0.5, "rollouts_with_spread": after}
    records += [{"step": i + 1, "stage": "rl", "pass_rate": after * (i + 1)} | spreads for i, t in enumerate(tokens)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_points_get_means_over_seeds_and_differences_paired_by_seed(tmp_path):
    spec = SweepSpec(name="toy", task="arith-python", grid={"algo.advantage": ["grpo", "rloo"]}, seeds=3)
    after = {("advantage-grpo", 0): 0.30, ("advantage-grpo", 1): 0.40, ("advantage-grpo", 2): 0.35}
    after |= {("advantage-rloo", 0): 0.36, ("advantage-rloo", 1): 0.44}  # seed 2 of rloo has not finished
    for run in sweep_runs(spec, tmp_path):
        if (run.point.label, run.seed) in after:
            fake_run(run.path, 0.25, after[(run.point.label, run.seed)], [100, 120])
    report = build_report(spec, tmp_path)
    grpo, rloo = report["points"]
    assert (report["runs_done"], report["runs_total"], report["baseline"]) == (5, 6, "advantage-grpo")
    assert grpo["pass@1_after"]["mean"] == pytest.approx(0.35) and grpo["vs_baseline"] is None
    assert rloo["runs"] == 2 and rloo["pass@1_after"]["mean"] == pytest.approx(0.40)
    diffs = [0.36 - 0.30, 0.44 - 0.40]  # paired by seed: only the seeds both points finished
    assert rloo["vs_baseline"]["mean"] == pytest.approx(sum(diffs) / 2)
    half = 12.706204736174707 * (abs(diffs[0] - diffs[1]) / math.sqrt(2)) / math.sqrt(2)  # t(0.975, 1 df)
    assert rloo["vs_baseline"]["high"] - rloo["vs_baseline"]["mean"] == pytest.approx(half)
    assert (grpo["steps"], grpo["sampled_tokens"], grpo["rl_seconds"]) == (2, 220, 4.0)
    assert grpo["groups_with_spread"] == 0.5 and grpo["rollouts_with_spread"] == pytest.approx(0.35)
    curve = rloo["curves"]["pass_rate"]  # seeds 0 and 1: pass_rate = after x step
    assert curve["step"] == [1, 2] and curve["low"] == [0.36, 0.72] and curve["high"] == [0.44, 0.88]
    assert curve["mean"] == pytest.approx([0.40, 0.80]) and rloo["curves"]["entropy"]["step"] == []
    table = report_markdown(report)
    assert (
        "| advantage-rloo | 2 | 0.250 [0.250, 0.250] | 0.400 [-0.108, 0.908] | +0.050 [-0.077, +0.177] | 2.0 | 220 |"
        in table
    )


def test_the_report_files_are_written_with_the_curves_figure(tmp_path):
    spec = SweepSpec(name="toy", task="arith-python", grid={"algo.advantage": ["grpo", "rloo"]}, seeds=2)
    for run in sweep_runs(spec, tmp_path):
        fake_run(run.path, 0.2, 0.3 + 0.1 * run.seed, [50, 60, 70])
    report = write_report(spec, tmp_path)
    root = tmp_path / "toy"
    assert json.loads((root / "report.json").read_text())["points"][1]["curves"] == report["points"][1]["curves"]
    assert "![curves](curves.png)" in (root / "report.md").read_text()
    html = (root / "report.html").read_text()
    assert "<td>advantage-rloo</td>" in html and "data:image/png;base64," in html and "<script" not in html
    assert (root / "curves.png").read_bytes().startswith(b"\x89PNG")
