"""The report's figures, drawn with matplotlib from the report alone (as read back from report.json: keys
are strings) and returned as PNG bytes.

Figures are built as `matplotlib.figure.Figure` objects (no pyplot): no global state, no display needed.
One colour per model; tools on is a solid line, tools off (the text-only baseline) dashed.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from functools import partial
from typing import Any

from matplotlib.figure import Figure

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
ENDINGS = {
    "answer": "#2ca02c",
    "no_answer": "#7f7f7f",
    "tool_call_without_tools": "#8c564b",
    "max_turns": "#ff7f0e",
    "max_length": "#d62728",
    "guard": "#9467bd",
    "error": "#000000",
}
"""Colours of the ways a trajectory ends (Trajectory.done)."""
TRAINING_PANELS = [
    ("reward and pass rate", ["reward_mean", "pass_rate"]),
    ("tool use", ["tool_calls", "code_use_ratio"]),
    ("entropy and KL", ["entropy", "approx_kl"]),
    ("tokens per trajectory", ["response_len"]),
]


def _style(entry: dict[str, Any]) -> dict[str, Any]:
    return {"color": COLORS[entry["model_index"] % len(COLORS)], "linestyle": "-" if entry["tools"] else "--"}


def _integer_bins(low: int, high: int, most: int = 30) -> list[float]:
    """Histogram edges on whole tokens: one bin per token, or `most` bins of whole-token width."""
    width = max(1, -(-(high - low + 1) // most))
    return [low - 0.5 + width * i for i in range((high - low) // width + 2)]


def to_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def passk_figure(task: dict[str, Any]) -> Figure:
    """pass@k and pass^k against k (log2 axis), one line per entry with its 95% bootstrap band."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ks = task["k"]
    panels = [("pass@k", "pass@k (any of k)"), ("pass^k", "pass^k (all of k)")]
    for ax, (field, title) in zip(fig.subplots(1, 2), panels, strict=True):
        for entry in task["entries"]:
            stats = [entry["aggregate"][field][str(k)] for k in ks]
            style = _style(entry)
            ax.plot(ks, [s["mean"] for s in stats], marker="o", label=entry["label"], **style)
            ax.fill_between(ks, [s["low"] for s in stats], [s["high"] for s in stats], color=style["color"], alpha=0.15)
        if len(ks) > 1:
            ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set(title=title, xlabel="k", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    fig.axes[0].set_ylabel("fraction of problems")
    fig.axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{task['task']}: {task['problems']} {task['split']} problems x {task['n']} samples, 95% CI bands")
    return fig


def tools_figure(task: dict[str, Any]) -> Figure:
    """Tool calls per trajectory, where the first code call ends (response token), and how trajectories ended."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    calls_ax, pos_ax, done_ax = fig.subplots(1, 3)
    entries = task["entries"]
    width = 0.8 / len(entries)
    positions = [int(p) for e in entries for p in e["aggregate"]["first_code_pos_histogram"]]
    edges = _integer_bins(min(positions, default=0), max(positions, default=0))
    for i, entry in enumerate(entries):
        agg, style = entry["aggregate"], _style(entry)
        hist = {int(k): v / agg["trajectories"] for k, v in agg["tool_calls_histogram"].items()}
        xs = [x + (i - (len(entries) - 1) / 2) * width for x in hist]
        hatch = None if entry["tools"] else "//"
        calls_ax.bar(xs, list(hist.values()), width, color=style["color"], hatch=hatch, label=entry["label"])
        first = {int(k): v for k, v in agg["first_code_pos_histogram"].items()}
        if first:
            pos_ax.hist(list(first), bins=edges, weights=list(first.values()), histtype="step", linewidth=1.5, **style)
    most = max(int(k) for e in entries for k in e["aggregate"]["tool_calls_histogram"])
    calls_ax.set_xticks(range(most + 1))
    calls_ax.set(title="tool calls per trajectory", xlabel="calls", ylabel="fraction of trajectories", ylim=(0, 1.05))
    calls_ax.legend(fontsize=7)
    pos_ax.set(title="first code call ends at (response token)", xlabel="token", ylabel="trajectories")
    reasons = list(dict.fromkeys(r for e in entries for r in e["aggregate"]["done"]))
    left = [0.0] * len(entries)
    for j, reason in enumerate(reasons):
        shares = [e["aggregate"]["done"].get(reason, 0) / e["aggregate"]["trajectories"] for e in entries]
        color = ENDINGS.get(reason, COLORS[j % len(COLORS)])
        done_ax.barh(range(len(entries)), shares, left=left, color=color, label=reason)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    done_ax.set_yticks(range(len(entries)), [textwrap.fill(e["label"], 24) for e in entries], fontsize=7)
    done_ax.invert_yaxis()
    done_ax.set(title="how trajectories ended", xlabel="fraction", xlim=(0, 1))
    done_ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    for ax in (calls_ax, pos_ax):
        ax.grid(alpha=0.3)
    return fig


def training_figure(curve: dict[str, Any]) -> Figure:
    """A run's metrics.jsonl: RL-step curves, with the held-out pass@1 before and after RL as markers."""
    rl = [m for m in curve["metrics"] if m.get("stage") == "rl"]
    evals = [m for m in curve["metrics"] if m.get("stage") in ("eval_before", "eval_after")]
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    for ax, (title, keys) in zip(fig.subplots(1, len(TRAINING_PANELS)), TRAINING_PANELS, strict=True):
        for key in keys:
            points = [(m["step"], m[key]) for m in rl if isinstance(m.get(key), int | float)]
            if points:
                ax.plot(*zip(*points, strict=True), label=key)
        if title.startswith("reward"):
            points = [(m["step"], m["pass@1"]) for m in evals if "pass@1" in m]
            if points:
                ax.plot(*zip(*points, strict=True), "k*", markersize=10, label="held-out pass@1")
        ax.set(title=title, xlabel="RL step")
        if title == "tool use":
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(f"training of {curve['name']}")
    return fig


def figure_sources(report: dict[str, Any]) -> dict[str, Callable[[], Figure]]:
    """Every figure of the report, not yet drawn, by a stable name (also its file name in figures/)."""
    sources: dict[str, Callable[[], Figure]] = {}
    for i, task in enumerate(report["tasks"]):
        sources[f"passk-{i}"] = partial(passk_figure, task)
        sources[f"tools-{i}"] = partial(tools_figure, task)
    for i, curve in enumerate(report["training"]):
        sources[f"training-{i}"] = partial(training_figure, curve)
    return sources


def report_figures(report: dict[str, Any]) -> dict[str, bytes]:
    """Every figure of the report as PNG bytes, by name."""
    return {name: to_png(make()) for name, make in figure_sources(report).items()}
