"""The report's tables, built once from the report (as read back from report.json) and rendered by both the
Markdown and the HTML writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""
    long: bool = False
    """Long tables (one row per problem) are folded away in the HTML report."""
    figures: list[str] = field(default_factory=list)
    """Figure names (see plots.report_figures) shown after the table."""


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ci(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.3f} [{stat['low']:.3f}, {stat['high']:.3f}]"


def _tools(entry: dict[str, Any]) -> str:
    return "yes" if entry["tools"] else "no"


def passk_table(task: dict[str, Any], field_name: str, what: str) -> Table:
    return Table(
        f"{field_name} ({what})",
        ["model", "tools", *[field_name.replace("k", str(k)) for k in task["k"]]],
        [
            [e["label"], _tools(e), *[_ci(e["aggregate"][field_name][str(k)]) for k in task["k"]]]
            for e in task["entries"]
        ],
        "mean over problems [95% bootstrap interval over problems]; unbiased estimator from "
        f"n={task['n']} samples per problem",
    )


def comparison_table(task: dict[str, Any]) -> Table | None:
    rows = [
        [
            c["a"],
            c["b"],
            c["metric"],
            _num(c["a_mean"]),
            _num(c["b_mean"]),
            f"{c['diff']:+.3f}",
            f"[{c['low']:+.3f}, {c['high']:+.3f}]",
            "yes" if c["outside_ci"] else "no",
        ]
        for c in task["comparisons"]
        if not c["metric"].startswith("pass^")
    ]
    if not rows:
        return None
    return Table(
        "differences",
        ["A", "B", "metric", "A", "B", "B − A", "95% CI of B − A", "outside CI"],
        rows,
        "paired over the same problems; 'outside CI' means the bootstrap interval of the difference excludes 0. "
        "Each model is compared with the first at the same tools setting, and each model's text-only baseline "
        "with its tools run. pass^k differences are in report.json.",
    )


def behaviour_table(task: dict[str, Any]) -> Table:
    rows = []
    for e in task["entries"]:
        a = e["aggregate"]
        rows.append(
            [
                e["label"],
                _tools(e),
                _ci(a["reward"]),
                _num(a["solved_any"]),
                _num(a["answered"]),
                _num(a["tool_calls"], 2),
                _num(a["turns"], 2),
                _num(a["code_use"]),
                _num(a["first_code_pos"], 1),
                str(a["parse_errors"]),
                str(a["tool_errors"]),
                str(a["timeouts"]),
                str(a["guard_violations"]),
                _num(a["generated_tokens_per_trajectory"], 1),
                _num(a["wall_seconds"], 1),
            ]
        )
    return Table(
        "behaviour",
        [
            "model",
            "tools",
            "mean reward",
            "solved (any of n)",
            "answered",
            "tool calls / traj",
            "turns / traj",
            "code use",
            "first code pos",
            "parse errors",
            "tool errors",
            "timeouts",
            "guard violations",
            "generated tokens / traj",
            "wall s",
        ],
        rows,
        "per trajectory unless counted; first code pos: response token where the first python call ends "
        "(mean over trajectories that call it); errors and guard violations are counts over all trajectories",
    )


def ended_table(task: dict[str, Any]) -> Table:
    reasons = list(dict.fromkeys(r for e in task["entries"] for r in e["aggregate"]["done"]))
    rows = []
    for e in task["entries"]:
        done, total = e["aggregate"]["done"], e["aggregate"]["trajectories"]
        rows.append([e["label"], _tools(e), *[_num(done.get(r, 0) / total) for r in reasons]])
    return Table(
        "how trajectories ended",
        ["model", "tools", *reasons],
        rows,
        "fraction of trajectories; tool_call_without_tools: the text-only baseline made a tool call (not run)",
    )


def guard_table(task: dict[str, Any]) -> Table | None:
    rows = [
        [e["label"], _tools(e), policy, ", ".join(f"{action}: {count}" for action, count in actions.items())]
        for e in task["entries"]
        for policy, actions in e["aggregate"]["guard_by_policy"].items()
    ]
    if not rows:
        return None
    return Table("guard violations by policy", ["model", "tools", "policy", "actions"], rows)


def problems_table(task: dict[str, Any]) -> Table:
    entries = task["entries"]
    rows = []
    for i, p in enumerate(entries[0]["problems"]):
        prompt = p["prompt"] if len(p["prompt"]) <= 80 else p["prompt"][:77] + "..."
        counts = [f"{e['problems'][i]['c']}/{e['problems'][i]['n']}" for e in entries]
        rows.append([p["id"], prompt, p["answer"], *counts])
    return Table(
        "per problem: correct samples (c/n)",
        ["id", "prompt", "answer", *[e["label"] for e in entries]],
        rows,
        long=True,
    )


def training_table(curve: dict[str, Any]) -> Table:
    metrics = curve["metrics"]
    rl = [m for m in metrics if m.get("stage") == "rl"]
    by_stage = {m.get("stage"): m for m in metrics}
    head, tail = rl[:5], rl[-5:]

    def mean(rows: list[dict], key: str) -> str:
        values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        return _num(sum(values) / len(values)) if values else "–"

    rows = [
        ["held-out pass@1 before RL", _num(by_stage.get("eval_before", {}).get("pass@1"))],
        ["held-out pass@1 after RL", _num(by_stage.get("eval_after", {}).get("pass@1"))],
        ["RL steps logged", str(len(rl))],
        ["training reward, first 5 steps", mean(head, "reward_mean")],
        ["training reward, last 5 steps", mean(tail, "reward_mean")],
        ["entropy, first 5 / last 5 steps", f"{mean(head, 'entropy')} / {mean(tail, 'entropy')}"],
    ]
    return Table(f"training of {curve['name']}", ["", "value"], rows, f"from {curve['run']}/metrics.jsonl")


def task_tables(task: dict[str, Any], index: int) -> list[Table]:
    passk = passk_table(task, "pass@k", "at least one of k samples correct")
    passk.figures = [f"passk-{index}"]
    tables = [passk, passk_table(task, "pass^k", "all of k samples correct")]
    tables.append(comparison_table(task))
    behaviour = behaviour_table(task)
    behaviour.figures = [f"tools-{index}"]
    tables += [behaviour, ended_table(task), guard_table(task), problems_table(task)]
    return [t for t in tables if t is not None]
