"""`agentrl eval` through the CLI with real (tiny, untrained) models, the engine and the sandbox."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agentrl import cli
from agentrl.errors import AgentRLError
from agentrl.evals.samples import SampleStore
from tests.evals.conftest import FAST

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(cli.app, ["eval", *args])


def test_compare_two_checkpoints_of_a_run(fake_run, tmp_path, fast_figures):
    sets = [a for s in [*FAST, f"run.runs_dir={tmp_path}"] for a in ("--set", s)]
    result = invoke(
        "arith-python",
        "--compare",
        str(fake_run / "sft_model"),
        str(fake_run),
        "--n",
        "2",
        "--k",
        "1,2",
        "--problems",
        "2",
        "--quiet",
        *sets,
    )
    assert result.exit_code == 0, result.output
    assert "tiny before RL: pass@1" in result.output and "tiny after RL (step 3): pass@1" in result.output
    report = json.loads((fake_run / "eval" / "report.json").read_text())
    task = report["tasks"][0]
    assert [e["model"]["path"] for e in task["entries"]] == [
        str(fake_run / "sft_model"),
        str(fake_run / "checkpoints" / "step-000003"),
    ]
    assert {c["metric"] for c in task["comparisons"]} == {"pass@1", "pass@2", "pass^1", "pass^2", "reward"}
    assert report["command"].startswith(f"agentrl eval arith-python --compare {fake_run / 'sft_model'} {fake_run} ")
    generated = task["entries"][0]["aggregate"]["generated_tokens"]
    assert 0 < generated <= 2 * 2 * 3 * 8  # problems x n x turns x max_new_tokens


def test_an_interrupted_eval_resumes_to_the_samples_of_an_unbroken_one(fake_run, tmp_path, monkeypatch, fast_figures):
    args = ["arith-python", "-m", str(fake_run), "--n", "2", "--problems", "3", "--batch", "1", "--k", "1", "-q"]
    args += [a for s in FAST for a in ("--set", s)]
    assert invoke(*args, "--out", str(tmp_path / "unbroken")).exit_code == 0

    append, batches = SampleStore.append_batch, []

    def crash_before_storing_the_second_batch(self, *a, **kw):
        batches.append(1)
        if len(batches) == 2:
            raise KeyboardInterrupt
        return append(self, *a, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(SampleStore, "append_batch", crash_before_storing_the_second_batch)
        broken = invoke(*args, "--out", str(tmp_path / "broken"))
    assert broken.exit_code == 130 and "run the same command again to continue" in broken.output
    assert len((tmp_path / "broken" / "samples.jsonl").read_text().splitlines()) == 2
    assert invoke(*args, "--out", str(tmp_path / "broken")).exit_code == 0

    def transcripts(out):
        rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        return sorted((r["problem"], r["sample"], [s["text"] for s in r["steps"]]) for r in rows)

    assert transcripts(tmp_path / "broken") == transcripts(tmp_path / "unbroken")


def test_a_suite_reproduces_its_table_and_options_override_it(fake_run, tmp_path, scripted, fast_figures):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: tiny-suite\ndescription: before and after RL, tools on and off\ntasks: [arith-python]\n"
        f"models: [{{path: {fake_run / 'sft_model'}, label: before}}, {{path: {fake_run}, label: after}}]\n"
        f"tools: [true, false]\nn: 3\nk: [1, 3]\nproblems: 4\nset: [{', '.join(FAST)}]\n"
    )
    result = invoke("--suite", str(suite), "--problems", "2", "-q")
    assert result.exit_code == 0, result.output
    report = json.loads((fake_run / "eval" / "report.json").read_text())
    assert report["title"] == "tiny-suite" and report["command"] == f"agentrl eval --suite {suite} --problems 2"
    task = report["tasks"][0]
    assert [e["label"] for e in task["entries"]] == ["before", "before (no tools)", "after", "after (no tools)"]
    assert task["problems"] == 2 and task["k"] == [1, 3]
    assert "after: pass@1 0.667, pass@3 1.000" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["arith-python", "-m", "x", "y"], "to compare models, write --compare A B"),
        (["arith-python", "--compare", "x"], "--compare needs at least two models"),
        (["arith-python", "-m", "x", "--no-tools", "--tools-ablation"], "exclude each other"),
        (["arith-python", "-m", "x", "--k", "1,two"], "comma-separated integers"),
        (["arith-python", "-m", "x", "--n", "4"], "pass@16 needs at least 16 samples"),
        (["arith-python"], "no model to evaluate"),
        (["-m", "x"], "no task to evaluate"),
        (["arith-python", "-m", "/nonexistent"], "no such directory"),
    ],
)
def test_user_errors_say_what_to_do(args, message):
    result = invoke(*args)
    assert isinstance(result.exception, AgentRLError)
    assert message in str(result.exception)


def test_eval_has_help():
    result = invoke("--help")
    assert result.exit_code == 0 and "--compare" in result.output and "--no-tools" in result.output
