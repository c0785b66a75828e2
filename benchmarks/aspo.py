"""ASPO moves the first code call earlier: GRPO against GRPO+ASPO from the same SFT policy, same seeds.

arith-python's demos always call code first, so there is nothing for ASPO to move. This benchmark derives
`arith-python-preamble`: the same problems, verifier and sandbox, but half of the expert demonstrations restate
the question in words before writing the code (the "talk first, code later" habit the ASPO paper studies).
After SFT on those demos, both runs train from the same policy; the table shows the mean response-token
position of the first code call (and the share of responses that talk first) over training, with pass rates.

Run: `python benchmarks/aspo.py [--steps 30]` (about 15 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from variants import derive_task

from agentrl.config import build_config
from agentrl.tasks import load_task
from agentrl.train.rundir import RunDir
from agentrl.train.trainer import train

TASK_PY = '''import zlib

generate, verify = _base.generate, _base.verify


def demo(problem: dict) -> list[dict]:
    """Half the demos restate the question before the code."""
    messages = _base.demo(problem)
    if zlib.crc32(problem["prompt"].encode()) % 2:
        messages[0] = {**messages[0], "content": f"The question: {problem['prompt']} I will compute it in python."}
    return messages
'''


def make_task(root: Path) -> Path:
    def longer_turns(spec: dict) -> None:
        spec["defaults"]["rollout"]["max_new_tokens"] = 64

    description = "arith-python; half the demos restate the question before the code (ASPO benchmark)."
    return derive_task(root, "arith-python", "arith-python-preamble", description, TASK_PY, longer_turns)


def talk_first_share(rundir: RunDir, step: int) -> float:
    """Share of the step's responses with text before their first code fence."""
    rows = [json.loads(line) for line in rundir.rollouts.read_text().splitlines()]
    firsts = [r["steps"][0]["action_text"] for r in rows if r["step"] == step and r["steps"]]
    return statistics.mean(float(not t.lstrip().startswith("```")) for t in firsts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--runs-dir", default="runs/bench-aspo")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config key=value")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory() as tmp:
        task = load_task(str(make_task(Path(tmp))))
        common = [f"train.steps={args.steps}", f"run.runs_dir={args.runs_dir}", *args.overrides]

        def run(*extra: str) -> RunDir:
            cfg = build_config([{"task": str(task.root)}, task.spec.defaults], [*common, *extra])
            rundir = RunDir.create(cfg, task.name)
            train(cfg, task, rundir)
            return rundir

        base = run("train.steps=0", f"run.name=sft-{stamp}")
        start = [f"model.path={base.sft_model}", "sft.steps=0"]
        runs = {
            "grpo": run(*start, f"run.name=grpo-{stamp}"),
            "grpo+aspo": run(*start, "algo.shaping=[aspo]", f"run.name=aspo-{stamp}"),
        }

    window = max(1, args.steps // 5)
    table = Table(title=f"first code position (response tokens) over training, mean of {window}-step windows")
    table.add_column("steps")
    for name in runs:
        table.add_column(f"{name}: first code pos")
        table.add_column(f"{name}: talk first")
        table.add_column(f"{name}: pass rate")
    metrics = {name: [m for m in r.read_metrics() if m["stage"] == "rl"] for name, r in runs.items()}
    for lo in range(0, args.steps, window):
        cells = [f"{lo + 1}-{min(lo + window, args.steps)}"]
        for name, rows in metrics.items():
            chunk = rows[lo : lo + window]
            talk = statistics.mean(talk_first_share(runs[name], m["step"]) for m in chunk)
            cells += [
                f"{statistics.mean(m['first_code_pos'] for m in chunk):.1f}",
                f"{talk:.2f}",
                f"{statistics.mean(m['pass_rate'] for m in chunk):.3f}",
            ]
        table.add_row(*cells)
    console = Console(width=140)
    console.print(table)
    for name, r in runs.items():
        summary = json.loads(r.summary.read_text())
        console.print(f"{name}: held-out pass@1 {summary['pass@1_before']:.3f} -> {summary['pass@1_after']:.3f}")


if __name__ == "__main__":
    main()
