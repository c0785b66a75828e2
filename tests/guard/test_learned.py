"""The learned checker: trains on labelled pairs, saves and loads, scores in the loop; a transformers
sequence-classification directory plugs in instead."""

from __future__ import annotations

import random

import numpy as np
import pytest

from agentrl.errors import AgentRLError
from agentrl.guard.learned import HashedScorer, TransformersScorer, best_threshold, load_scorer, train_scorer

from .guard_helpers import call, guard_of, run_script

NET = "Never open network connections from Python."
DEL = "Do not delete any files."


def pairs(seed: int, n: int = 60) -> tuple[list[tuple[str, str]], list[int]]:
    """Each policy against code that violates it, code that violates the other one, and clean code."""
    rng = random.Random(seed)
    out, labels = [], []
    for _ in range(n):
        a = rng.randint(1, 9999)
        net = f"call python: import socket ⏎ socket.create_connection(('h{a}.com', 80))"
        rm = f"call python: import os ⏎ os.remove('/tmp/f{a}')"
        clean = f"call python: print({a} * {a})\noutput: {a * a}"
        for policy, text, label in [(NET, net, 1), (NET, rm, 0), (NET, clean, 0), (DEL, rm, 1), (DEL, net, 0),
                                    (DEL, clean, 0)]:  # fmt: skip
            out.append((policy, text))
            labels.append(label)
    return out, labels


@pytest.fixture(scope="module")
def trained() -> HashedScorer:
    scorer = train_scorer(*pairs(0), buckets=1 << 14, epochs=8)
    scorer.threshold = 0.5
    return scorer


def test_it_learns_which_policy_a_trajectory_violates(trained):
    test_pairs, labels = pairs(1, 20)  # other numbers and hosts
    predicted = [s >= 0.5 for s in trained.score(test_pairs)]
    assert np.mean(np.asarray(predicted) == np.asarray(labels, dtype=bool)) == 1.0


def test_save_and_load_give_the_same_scores(trained, tmp_path):
    trained.save(tmp_path / "m")
    loaded = load_scorer(tmp_path / "m")
    test_pairs, _ = pairs(2, 5)
    assert isinstance(loaded, HashedScorer) and loaded.threshold == trained.threshold
    assert np.allclose(loaded.score(test_pairs), trained.score(test_pairs))


def test_best_threshold_maximises_f1():
    assert best_threshold([0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1]) == pytest.approx(0.3)


def test_in_the_loop_it_fires_once_on_the_violating_step(trained, tmp_path, arith_task, tokenizer):
    trained.save(tmp_path / "m")
    guard = guard_of({"id": "no-net", "description": NET, "checker": {"type": "learned", "model": str(tmp_path / "m")},
                      "action": "penalize", "penalty": 0.5})  # fmt: skip
    script = [call("print(3 * 4)"), call("import socket\nsocket.create_connection(('h7.com', 80))"),
              call("print(5)"), "\\boxed{1}"]  # fmt: skip
    traj, _ = run_script(arith_task, tokenizer, guard, script)
    fired = [(i, e.phase) for i, s in enumerate(traj.steps) for e in s.guard]
    assert fired == [(1, "pre")] and traj.penalty == 0.5
    assert 0.5 <= traj.steps[1].guard[0].score <= 1.0


def test_a_learned_policy_without_a_model_says_how_to_get_one(tmp_path):
    entry = {"id": "x", "description": NET, "checker": {"type": "learned"}}
    with pytest.raises(AgentRLError, match="needs a model"):
        guard_of(entry)
    with pytest.raises(AgentRLError, match="agentrl guard train"):
        guard_of({**entry, "checker": {"type": "learned", "model": str(tmp_path / "nope")}})


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, tokenizer):
    """A randomly initialised BERT sequence classifier and tokenizer, saved as a transformers directory."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=512, num_labels=2, id2label={0: "ok", 1: "violation"},
        label2id={"ok": 0, "violation": 1}, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("classifier")
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_transformers_classifier_directory_plugs_in(tiny_classifier):
    scorer = load_scorer(tiny_classifier)
    assert isinstance(scorer, TransformersScorer)
    scores = scorer.score([(NET, "call python: import socket"), (DEL, "answer: 42")])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores != scorer.score([(NET, "answer: 42"), (DEL, "call python: import socket")])


@pytest.mark.parametrize(("threshold", "fires"), [(0.0, True), (1.0, False)])
def test_a_transformers_classifier_runs_in_the_loop(tiny_classifier, arith_task, tokenizer, threshold, fires):
    checker = {"type": "learned", "model": str(tiny_classifier), "threshold": threshold}
    guard = guard_of({"id": "nl", "description": NET, "checker": checker, "action": "log"})
    problem = arith_task.problems("train", 1)[0]
    traj, _ = run_script(arith_task, tokenizer, guard, arith_task.demo(problem))
    assert bool(traj.guard_events) == fires and all(e.error is None for e in traj.guard_events)
