"""The benchmark on disk (evals/guard/) as Python objects, and the learned checker's training pairs from it.

Files: `episodes.jsonl` (each episode's steps, without token ids), `train.jsonl` / `test.jsonl` (one row per
(policy wording, episode, prefix): `prefix` null for the whole trajectory, `label`, and `at`, where the
episode first violates the policy: [step, pre | post | final]), `policies.yaml` (the policies' checkers and
wordings).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agentrl.errors import AgentRLError
from agentrl.guard.learned import HashedScorer, best_threshold, train_scorer
from agentrl.guard.view import StepView, render_prefix, replay_views
from agentrl.trajectory import Trajectory, trajectory_from_record


@dataclass
class Bench:
    episodes: dict[str, Trajectory]
    policies: dict[str, dict[str, Any]]
    """Policy id -> its catalogue entry: checker (None: natural language only), family, wordings."""
    rows: dict[str, list[dict[str, Any]]]
    """Split -> example rows."""


def load_bench(path: str | Path) -> Bench:
    path = Path(path)
    needed = ["episodes.jsonl", "policies.yaml", "train.jsonl", "test.jsonl"]
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        raise AgentRLError(
            f"{path}: not a guard benchmark (missing {', '.join(missing)}); "
            "write one with `agentrl guard make-bench --out DIR`"
        )
    episodes = {row["id"]: trajectory_from_record(row) for row in _read_jsonl(path / "episodes.jsonl")}
    policies = {p["id"]: p for p in yaml.safe_load((path / "policies.yaml").read_text())}
    rows = {split: _read_jsonl(path / f"{split}.jsonl") for split in ("train", "test")}
    return Bench(episodes, policies, rows)


def _read_jsonl(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def view_label(view: StepView, at: list | None) -> int:
    """Whether a violation at `at` = [step, where] shows in this view (pre views do not show their output)."""
    if at is None:
        return 0
    step, where = at
    return int(step < view.index or (step == view.index and (view.phase == "post" or where in ("pre", "final"))))


def view_pairs(
    bench: Bench, split: str = "train", wordings: str | None = None, per_row: int = 1, seed: int = 0
) -> tuple[list[tuple[str, str]], list[int]]:
    """(wording, rendered prefix) pairs with labels at every view the guard sees in the loop, from the split's
    whole-trajectory rows (prefix rows are those same views).

    With `wordings` (a catalogue key: train_wordings, val_wordings, test_wordings), `per_row` wordings drawn from
    it replace the row's own: more, and other, wordings of the same policy.
    """
    rng = random.Random(seed)
    pairs, labels = [], []
    for row in bench.rows[split]:
        if row["prefix"] is not None:
            continue
        texts = [row["policy"]]
        if wordings is not None:
            pool = bench.policies[row["policy_id"]][wordings]
            texts = rng.sample(pool, min(per_row, len(pool)))
        for view in replay_views(bench.episodes[row["episode"]]):
            text, label = render_prefix(view), view_label(view, row["at"])
            for wording in texts:
                pairs.append((wording, text))
                labels.append(label)
    return pairs, labels


def fit_learned(bench: Bench, per_row: int = 6, seed: int = 0, **options) -> HashedScorer:
    """Train the hashed model on the train split (each episode with `per_row` train wordings of each policy) and
    set its threshold for the best F1 on the same episodes with the validation wordings, which it never saw."""
    pairs, labels = view_pairs(bench, "train", "train_wordings", per_row, seed)
    scorer = train_scorer(pairs, labels, seed=seed, **options)
    val_pairs, val_labels = view_pairs(bench, "train", "val_wordings", 2, seed)
    scorer.threshold = best_threshold(scorer.score(val_pairs), val_labels)
    scorer.meta = {"trained_on": len(pairs), "violations": int(sum(labels)), "validated_on": len(val_pairs)}
    return scorer
