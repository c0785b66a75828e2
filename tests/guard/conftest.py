"""A small slice of the bundled benchmark, for tests of the commands that read one."""

from __future__ import annotations

import json
import shutil

import pytest

from agentrl.guard.bench import BENCH_DIR
from agentrl.guard.dataset import load_bench


@pytest.fixture(scope="session")
def bundled_bench():
    return load_bench(BENCH_DIR)


@pytest.fixture(scope="session")
def small_bench(tmp_path_factory):
    """The first 6 python and 6 browser episodes of each split, with their rows."""
    out = tmp_path_factory.mktemp("bench")
    episodes = [json.loads(line) for line in (BENCH_DIR / "episodes.jsonl").open()]
    keep, kept = {}, []
    for ep in episodes:
        key = (ep["split"], ep["domain"])
        if keep.get(key, 0) < 6:
            keep[key] = keep.get(key, 0) + 1
            kept.append(ep)
    ids = {ep["id"] for ep in kept}
    (out / "episodes.jsonl").write_text("".join(json.dumps(ep) + "\n" for ep in kept))
    for split in ("train", "test"):
        rows = [line for line in (BENCH_DIR / f"{split}.jsonl").open() if json.loads(line)["episode"] in ids]
        (out / f"{split}.jsonl").write_text("".join(rows))
    shutil.copy(BENCH_DIR / "policies.yaml", out / "policies.yaml")
    return out
