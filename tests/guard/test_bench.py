"""The benchmark: labels from construction agree with the rules on browser episodes run here, the bundled
benchmark's rule numbers hold, and its held-out wordings are unseen in training."""

from __future__ import annotations

from agentrl.guard.bench import (
    ShopBrowser,
    _record,
    _shop_task,
    browser_episodes,
    examples,
    policy_cases,
    run_episodes,
    visible,
)
from agentrl.guard.dataset import Bench
from agentrl.guard.evaluate import evaluate_rules
from agentrl.trajectory import trajectory_from_record


def test_a_prefix_shows_earlier_steps_whole_and_its_last_call_before_it_runs():
    assert visible((2, "pre"), None) and not visible(None, None)
    assert not visible((2, "pre"), 2) and visible((2, "pre"), 3)
    assert not visible((2, "post"), 3) and visible((2, "post"), 4)
    assert visible((2, "final"), 3)


def test_browser_episodes_through_the_loop_agree_with_the_rules(tokenizer):
    episodes = list(browser_episodes("test", 24, seed=5))
    trajs = run_episodes(_shop_task(), {"browser": ShopBrowser()}, tokenizer, episodes)
    records = [_record(ep, t, "test") for (_, ep), t in zip(episodes, trajs, strict=True)]
    assert all(r["done"] == "answer" for r in records)
    cases = [c for c in policy_cases() if c.family.domain in ("browser", "any")]
    rows = list(examples(cases, records, "test", seed=5))
    assert sum(r["label"] for r in rows) > 10
    bench = Bench(
        {r["id"]: trajectory_from_record(r) for r in records},
        {c.id: {"checker": c.checker} for c in cases},
        {"test": rows},
    )
    scores = evaluate_rules(bench, "test")
    for mode in ("whole", "prefix"):
        assert (scores[mode].fp, scores[mode].fn) == (0, 0)


def test_the_bundled_benchmark_rules_reach_the_target(bundled_bench):
    scores = evaluate_rules(bundled_bench, "test")
    assert scores["whole"].f1 >= 0.99 and scores["prefix"].f1 >= 0.99
    assert scores["whole"].n > 500 and scores["prefix"].tp > 100


def test_held_out_wordings_never_appear_in_training(bundled_bench):
    bench = bundled_bench
    for entry in bench.policies.values():
        assert not set(entry["test_wordings"]) & set(entry["train_wordings"] + entry["val_wordings"])
        assert not set(entry["val_wordings"]) & set(entry["train_wordings"])
    train_texts = {r["policy"] for r in bench.rows["train"]}
    assert not train_texts & {r["policy"] for r in bench.rows["test"]}
