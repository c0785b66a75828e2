"""Sandbox speed against the obvious baseline: a plain `python -c` subprocess per execution.

    .venv/bin/python benchmarks/sandbox.py [--quick]

Measures, in one run and on the same machine, session start, trivial-cell latency (p50, p99),
executions per second with 2, 8 and 64 concurrent sessions, and fork latency, each beside the
baseline. Every figure is the median of several rounds (the machine is shared and noisy). The
baseline has no isolation at all, so the ratios understate what the sandbox buys.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time

from rich.console import Console
from rich.table import Table

from agentrl.sandbox import open_sandbox

PY = sys.executable


def baseline_once(code: str = "print(1 + 1)") -> float:
    t0 = time.perf_counter()
    subprocess.run([PY, "-c", code], capture_output=True, check=True)
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def median_of_rounds(fn, rounds: int) -> float:
    return statistics.median(fn() for _ in range(rounds))


def throughput(run_one, sessions: list, seconds: float) -> float:
    """Executions per second, each thread driving its own session for `seconds`."""
    stop = time.perf_counter() + seconds
    counts = [0] * len(sessions)

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            run_one(sessions[i])
            counts[i] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    seconds = 0.5 if args.quick else 1.5
    rows: list[tuple[str, str, str, str]] = []

    def add(name: str, ours: float, base: float, unit: str, higher_is_better: bool = False) -> None:
        ratio = ours / base if higher_is_better else base / ours
        fmt = "{:.0f}" if unit == "/s" else "{:.2f}"
        rows.append((name, f"{fmt.format(ours)} {unit}", f"{fmt.format(base)} {unit}", f"{ratio:.1f}x"))

    console = Console(width=140)
    console.print(f"python: {PY}; rounds: {rounds}")

    # -- sandbox start (container + zygote) vs. one interpreter start
    def sandbox_start() -> float:
        t0 = time.perf_counter()
        open_sandbox().close()
        return time.perf_counter() - t0

    add(
        "sandbox start (container + zygote)",
        1000 * median_of_rounds(sandbox_start, rounds),
        1000 * median_of_rounds(lambda: baseline_once("pass"), rounds),
        "ms",
    )

    with open_sandbox(timeout=30, max_procs=256) as sb:
        # -- session start
        def session_start() -> float:
            ts = []
            for _ in range(20):
                t0 = time.perf_counter()
                s = sb.session()
                ts.append(time.perf_counter() - t0)
                s.close()
            return statistics.median(ts)

        base_start = median_of_rounds(lambda: baseline_once("pass"), rounds)
        add("session start", 1000 * median_of_rounds(session_start, rounds), 1000 * base_start, "ms")

        # -- trivial cell latency
        s = sb.session()
        for _ in range(20):
            s.run("1 + 1")
        ours = [s.run("1 + 1").duration_s for _ in range(100 * rounds)]
        base = [baseline_once() for _ in range(10 * rounds)]
        add("trivial cell p50", 1000 * pct(ours, 0.5), 1000 * pct(base, 0.5), "ms")
        add("trivial cell p99", 1000 * pct(ours, 0.99), 1000 * pct(base, 0.99), "ms")

        # -- executions per second with concurrent sessions
        for n in (2, 8, 64):
            sessions = [sb.session() for _ in range(n)]
            ours_tp = median_of_rounds(lambda ss=sessions: throughput(lambda x: x.run("1 + 1"), ss, seconds), rounds)
            for sess in sessions:
                sess.close()
            base_tp = median_of_rounds(lambda n=n: throughput(lambda _: baseline_once(), [None] * n, seconds), rounds)
            add(f"executions/s, {n} concurrent sessions", ours_tp, base_tp, "/s", higher_is_better=True)

        # -- fork: copy a session holding some state vs. rebuilding that state in a new process
        s.run("data = list(range(100_000))\nimport json, math")

        def fork_latency() -> float:
            ts = []
            for _ in range(20):
                t0 = time.perf_counter()
                f = s.fork()
                ts.append(time.perf_counter() - t0)
                f.close()
            return statistics.median(ts)

        rebuild = "data = list(range(100_000))\nimport json, math"
        add(
            "fork (session with 100k-int list)",
            1000 * median_of_rounds(fork_latency, rounds),
            1000 * median_of_rounds(lambda: baseline_once(rebuild), rounds),
            "ms",
        )

    table = Table(title="agentrl local sandbox vs. `python -c` per execution (medians)")
    for col in ("measure", "agentrl sandbox", "python -c", "speed-up"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
