"""Samples stored as they finish: `samples.jsonl`, one JSON line per trajectory, appended and fsynced per batch.

Every row carries the key of its eval entry (model weights, task, split, tools, sampling settings, n) and the
id of the batch it was written with. On reading, a batch counts only if all its rows are there, so a crash
during a write loses that batch and nothing else; an eval re-run with the same settings skips every problem
already stored and samples the rest.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from agentrl.tasks import Problem
from agentrl.trajectory import Trajectory


def problem_uid(problem: Problem) -> str:
    """The problem's id and a hash of its prompt: a task whose ids are positions cannot mix problems up."""
    return f"{problem.id}#{hashlib.sha256(problem.prompt.encode()).hexdigest()[:12]}"


NO_TOOLS = "tool_call_without_tools"
"""Text-only baseline: the error and end reason of a tool call, which is not run and ends the trajectory."""


def trajectory_record(traj: Trajectory, tools: bool = True) -> dict[str, Any]:
    """What the report needs of one trajectory: outcome, tool use, errors, guard events, tokens, transcript.

    Token ids and log-probs are left out (they are for training, and would make the file 10x larger).
    Without tools, the loop reports a call as an unknown tool after one turn; that is recorded as `NO_TOOLS`.
    """
    first_code = traj.first_tool_position("python")
    errors = Counter(s.error for s in traj.steps if s.error)
    done = traj.done
    if not tools and errors.get("unknown_tool"):
        errors[NO_TOOLS] = errors.pop("unknown_tool")
        done = NO_TOOLS
    return {
        "score": traj.score,
        "reward": traj.reward,
        "penalty": traj.penalty,
        "correct": traj.correct,
        "done": done,
        "answer": traj.answer,
        "turns": len(traj.steps),
        "tool_calls": traj.num_tool_calls,
        "first_code_pos": None if math.isnan(first_code) else first_code,
        "errors": dict(errors),
        "guard": [{"policy": e.policy, "action": e.action, "phase": e.phase} for e in traj.guard_events],
        "generated_tokens": traj.num_generated,
        "response_tokens": len(traj.response_ids),
        "tool_seconds": sum(s.seconds for s in traj.steps),
        "steps": [
            {"text": s.action_text, "tool": s.tool, "error": s.error, "observation": s.observation} for s in traj.steps
        ],
    }


class SampleStore:
    def __init__(self, path: Path):
        self.path = path
        self._rows: dict[str, dict[str, list[dict]]] = defaultdict(dict)
        self._read()

    def _read(self) -> None:
        if not self.path.exists():
            return
        batches: dict[str, list[dict]] = defaultdict(list)
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: its batch is incomplete and is sampled again
            batches[row["batch"]].append(row)
        for rows in batches.values():
            if len(rows) == rows[0]["batch_rows"]:
                self._add(rows)

    def _add(self, rows: list[dict]) -> None:
        by_problem: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for row in rows:
            by_problem[row["key"], row["problem"]].append(row)
        for (key, uid), group in by_problem.items():
            self._rows[key].setdefault(uid, sorted(group, key=lambda r: r["sample"]))

    def done(self, key: str) -> dict[str, list[dict]]:
        """Stored samples of an eval entry, by problem uid."""
        return self._rows.get(key, {})

    def append_batch(self, key: str, samples: dict[str, list[dict]]) -> None:
        """Store one batch (problem uid -> its samples' records) durably: appended, flushed, fsynced."""
        batch = uuid.uuid4().hex
        count = sum(len(group) for group in samples.values())
        rows = [
            {"key": key, "batch": batch, "batch_rows": count, "problem": uid, "sample": i, **record}
            for uid, group in samples.items()
            for i, record in enumerate(group)
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab+") as f:
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")  # end a line a crash cut short, so the new rows parse
            f.write("".join(json.dumps(row) + "\n" for row in rows).encode())
            f.flush()
            os.fsync(f.fileno())
        self._add(rows)
