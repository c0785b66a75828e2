"""The sweep's comparison report: per grid point, held-out pass@1 over seeds with a 95% interval, paired
differences against the baseline point, what each point cost, and its training curves over seeds (curves.png).

Every run is evaluated on the same held-out problems (`evaluate` draws the test split with a fixed seed), so runs
of two points at the same seed differ only in the point's settings and the sampling: a difference is paired by
seed. Intervals are Student-t over seeds (a handful of seeds is too few for a bootstrap).
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

import jinja2
from matplotlib.figure import Figure
from scipy import stats

from agentrl.evals.plots import COLORS, to_png
from agentrl.evals.report import HTML_STYLE, TABLE_MACRO, markdown_table
from agentrl.evals.tables import Table
from agentrl.sweep.runner import SweepRun, sweep_dir, sweep_runs
from agentrl.sweep.spec import SweepSpec
from agentrl.train.rundir import RunDir


def t_interval(values: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean of `values` with its Student-t interval (None bounds with fewer than two values)."""
    n = len(values)
    mean = fmean(values) if values else None
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n}
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * stdev(values) / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def read_run(run: SweepRun) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """A finished run's summary and its RL-step metrics; None if it has not finished."""
    rundir = RunDir(run.path)
    if not rundir.summary.is_file():
        return None
    rl = [m for m in rundir.read_metrics() if m.get("stage") == "rl"]
    return json.loads(rundir.summary.read_text()), rl


def run_record(run: SweepRun, summary: dict[str, Any], rl: list[dict[str, Any]]) -> dict[str, Any]:
    """A finished run's figures: pass@1 before and after RL, what RL spent, and the shares of sampled groups and
    rollouts whose group's rewards differed (None for runs that predate the metric)."""
    return {
        "point": run.point.label,
        "seed": run.seed,
        "pass@1_before": summary["pass@1_before"],
        "pass@1_after": summary["pass@1_after"],
        "steps": summary["steps"],
        "stopped_by": summary["stopped_by"],
        "sampled_tokens": summary["rl_sampled_tokens"],
        "rl_seconds": summary["rl_seconds"],
        **{key: _mean([m.get(key) for m in rl]) for key in SPREADS},
    }


SPREADS = ("groups_with_spread", "rollouts_with_spread")
"""The RL-step metrics of the share of a step's samples with a non-zero advantage, per group and per rollout."""


CURVES = {"pass_rate": "training pass rate", "entropy": "token entropy"}
"""The RL-step metrics the report draws per point: the mean over seeds, with a band from the lowest to the highest."""


def point_curves(runs: list[list[dict[str, Any]]]) -> dict[str, dict[str, list[float]]]:
    """Per metric of CURVES: the steps every given run (its RL-step metrics) reached, and the mean, min and max
    over the runs."""
    curves = {}
    for key in CURVES:
        by_step = [{m["step"]: m[key] for m in rl if isinstance(m.get(key), int | float)} for rl in runs]
        steps = sorted(set.intersection(*(set(s) for s in by_step))) if by_step else []
        values = [[s[step] for s in by_step] for step in steps]
        curves[key] = {
            "step": steps,
            "mean": [fmean(v) for v in values],
            "low": [min(v) for v in values],
            "high": [max(v) for v in values],
        }
    return curves


def curves_figure(report: dict[str, Any]) -> Figure:
    """One panel per metric of CURVES, one line (and band over seeds) per point."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    for ax, (key, title) in zip(fig.subplots(1, len(CURVES)), CURVES.items(), strict=True):
        for i, point in enumerate(report["points"]):
            curve = point["curves"][key]
            if curve["step"]:
                color = COLORS[i % len(COLORS)]
                ax.plot(curve["step"], curve["mean"], color=color, label=point["point"])
                ax.fill_between(curve["step"], curve["low"], curve["high"], color=color, alpha=0.2)
        ax.set(title=title, xlabel="RL step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(f"sweep {report['sweep']}: mean over seeds, band from lowest to highest")
    return fig


def build_report(spec: SweepSpec, runs_dir: str | Path) -> dict[str, Any]:
    runs = sweep_runs(spec, runs_dir)
    finished = {run: read for run in runs if (read := read_run(run)) is not None}
    records = [run_record(run, summary, rl) for run, (summary, rl) in finished.items()]
    baseline = spec.baseline_point().label
    by_seed = {(r["point"], r["seed"]): r for r in records}
    points = []
    for point in spec.grid_points():
        mine = [r for r in records if r["point"] == point.label]
        paired = [
            r["pass@1_after"] - by_seed[(baseline, r["seed"])]["pass@1_after"]
            for r in mine
            if (baseline, r["seed"]) in by_seed
        ]
        points.append(
            {
                "point": point.label,
                "settings": list(point.overrides),
                "runs": len(mine),
                "pass@1_after": t_interval([r["pass@1_after"] for r in mine]),
                "pass@1_before": t_interval([r["pass@1_before"] for r in mine]),
                "vs_baseline": None if point.label == baseline else t_interval(paired),
                **{key: _mean([r[key] for r in mine]) for key in COSTS},
                "curves": point_curves([rl for run, (_, rl) in finished.items() if run.point == point]),
            }
        )
    return {
        "sweep": spec.name,
        "task": spec.task,
        "seeds": spec.seeds,
        "baseline": baseline,
        "match": spec.match,
        "budget": spec.budget,
        "sets": spec.sets,
        "runs_done": len(records),
        "runs_total": len(runs),
        "points": points,
        "runs": records,
    }


COSTS = {
    "steps": "{:.1f}",
    "sampled_tokens": "{:,.0f}",
    "rl_seconds": "{:,.0f}",
    "groups_with_spread": "{:.2f}",
    "rollouts_with_spread": "{:.2f}",
}
"""What RL spent, and the shares of its groups and rollouts with a non-zero advantage, averaged over a point's
seeds, and how the table prints it."""


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return fmean(known) if known else None


def _interval(cell: dict[str, Any] | None, signed: bool = False) -> str:
    if cell is None or cell["mean"] is None:
        return "-"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    text = fmt.format(cell["mean"])
    if cell["low"] is not None:
        text += f" [{fmt.format(cell['low'])}, {fmt.format(cell['high'])}]"
    return text


def _matched(report: dict[str, Any]) -> str:
    if report["match"] == "steps":
        return "Every point runs the same RL steps."
    what = {"tokens": "tokens sampled in RL", "seconds": "seconds of RL steps"}[report["match"]]
    budget = f"{report['budget']:g}" if report["budget"] else "what the baseline's run of the same seed spent"
    return f"Matched in {what}: each run stops after the step that reaches {budget}."


def sweep_table(report: dict[str, Any]) -> Table:
    """The comparison table, one row per point."""
    headers = ["point", "runs", "pass@1 before RL", "pass@1 after RL", "vs baseline"]
    headers += ["RL steps", "sampled tokens (RL)", "RL seconds", "groups with spread", "rollouts with spread"]
    rows = []
    for p in report["points"]:
        vs = "baseline" if p["vs_baseline"] is None else _interval(p["vs_baseline"], signed=True)
        costs = ["-" if p[key] is None else fmt.format(p[key]) for key, fmt in COSTS.items()]
        rows.append([p["point"], str(p["runs"]), _interval(p["pass@1_before"]), _interval(p["pass@1_after"]), vs])
        rows[-1] += costs
    note = (
        f"{report['runs_done']} of {report['runs_total']} runs done, {report['seeds']} seeds per point. Held-out "
        "pass@1: the mean over seeds with its 95% Student-t interval; the difference to the baseline point "
        f"{report['baseline']} is paired by seed. {_matched(report)} Costs are means over seeds; groups with "
        "spread: the share of sampled groups whose rewards differed (a non-zero advantage), over steps and seeds; "
        "rollouts with spread: the share of sampled rollouts in such groups."
    )
    return Table(f"Sweep {report['sweep']}: {report['task']}", headers, rows, note, figures=["curves"])


HTML = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ t.title }}</title>"""
    + HTML_STYLE
    + "</head><body>"
    + TABLE_MACRO
    + """
{{ table(t) }}
{% if sets %}<p class="note">shared settings: {{ sets|join(", ") }}</p>{% endif %}
<h2>points</h2>
<table>{% for p in points %}<tr><th>{{ p.point }}</th><td>{{ p.settings|join(", ") or "-" }}</td></tr>{% endfor %}
</table>
</body></html>
"""
)


def report_markdown(report: dict[str, Any]) -> str:
    table = markdown_table(sweep_table(report)).replace("figures/curves.png", "curves.png")
    lines = ["#" + table.removeprefix("###")]  # the page's title
    if report["sets"]:
        lines += ["Shared settings: " + ", ".join(f"`{s}`" for s in report["sets"]), ""]
    lines += [
        "Points:",
        "",
        *[f"- `{p['point']}`: " + (", ".join(f"`{s}`" for s in p["settings"]) or "-") for p in report["points"]],
    ]
    return "\n".join(lines) + "\n"


def report_html(report: dict[str, Any], curves_png: bytes) -> str:
    """The report as one self-contained page (the figure embedded, no script)."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    figures = {"curves": base64.b64encode(curves_png).decode()}
    return env.from_string(HTML).render(
        t=sweep_table(report), sets=report["sets"], points=report["points"], figures=figures
    )


def write_report(spec: SweepSpec, runs_dir: str | Path) -> dict[str, Any]:
    """report.json, report.md, report.html and curves.png in the sweep's folder; returns the report."""
    report = build_report(spec, runs_dir)
    root = sweep_dir(spec, runs_dir)
    png = to_png(curves_figure(report))
    (root / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (root / "report.md").write_text(report_markdown(report))
    (root / "report.html").write_text(report_html(report, png))
    (root / "curves.png").write_bytes(png)
    return report
