"""Report writers: report.json (everything), report.md (tables, figures linked), report.html (self-contained).

All three are rendered from the report as read back from its JSON, so `render_reports(json.load(...), out)`
redraws them from report.json alone. The HTML needs no network: figures are embedded as base64 PNG, styles
are inline, there is no script.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jinja2

from agentrl.evals.plots import report_figures
from agentrl.evals.tables import Table, task_tables, training_table

HTML_STYLE = """<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1300px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 .3em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
.note { color: #666; font-size: 12px; margin: 0 0 1em; } img { max-width: 100%; display: block; margin: .5em 0 1.5em; }
pre { background: #f6f6f6; padding: .6em; white-space: pre-wrap; font-size: 12px; } code { font-size: 12px; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
</style>"""
"""The reports' inline styles (the sweep report shares them)."""

TABLE_MACRO = """{% macro table(t) %}
<h3>{{ t.title }}</h3>
{% if t.long %}<details><summary>{{ t.rows|length }} rows</summary>{% endif %}
<table><tr>{% for h in t.headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>{% if t.long %}</details>{% endif %}
{% if t.note %}<p class="note">{{ t.note }}</p>{% endif %}
{% for name in t.figures %}<img alt="{{ name }}" src="data:image/png;base64,{{ figures[name] }}">{% endfor %}
{% endmacro %}"""
"""A Table (agentrl.evals.tables) in HTML, its figures embedded from `figures` (name -> base64 PNG)."""

HTML_TEMPLATE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ r.title }}</title>"""
    + HTML_STYLE
    + """</head><body>
<h1>{{ r.title }}</h1>
{% if r.description %}<p>{{ r.description }}</p>{% endif %}
<p class="note">created {{ r.created }} · {{ r.sampled_trajectories }} trajectories sampled now,
{{ r.reused_trajectories }} reused from samples.jsonl · {{ "%.1f"|format(r.wall_seconds) }} s
{% if r.command %}<br>reproduce: <code>{{ r.command }}</code>{% endif %}</p>
"""
    + TABLE_MACRO
    + """
{% for task, tables in tasks %}
<h2>{{ task.task }}: {{ task.problems }} {{ task.split }} problems × {{ task.n }} samples</h2>
<p class="note">tools available: {{ task.tools_available|join(", ") or "none" }} · without tools, the model gets one
turn and a tool call ends the trajectory unanswered</p>
{% for t in tables %}{{ table(t) }}{% endfor %}
<h3>example trajectories</h3>
{% for e in task.entries %}{% for kind, ex in e.examples.items() %}
<details><summary>{{ e.label }}: a {{ kind }} one ({{ ex.prompt }} → expected {{ ex.expected }},
answered {{ ex.answer }})</summary>
{% for s in ex.steps %}<pre>{{ s.text }}{% if s.observation %}{{ s.observation }}{% endif %}</pre>{% endfor %}
</details>{% endfor %}{% endfor %}
{% endfor %}
{% if training %}<h2>training</h2>{% endif %}
{% for t, name in training %}{{ table(t) }}
<img alt="{{ name }}" src="data:image/png;base64,{{ figures[name] }}">{% endfor %}
<h2>versions</h2>
<table>{% for k, v in r.versions.items() %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
</body></html>
"""
)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(_md_cell(h) for h in table.headers) + " |")
    lines.append("|" + "---|" * len(table.headers))
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"_{table.note}_"]
    lines += ["", *[f"![{name}](figures/{name}.png)\n" for name in table.figures]]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    out = [f"# {report['title']}", ""]
    if report["description"]:
        out += [report["description"], ""]
    out.append(
        f"Created {report['created']}: {report['sampled_trajectories']} trajectories sampled now, "
        f"{report['reused_trajectories']} reused from samples.jsonl, in {report['wall_seconds']:.1f} s."
    )
    if report["command"]:
        out += ["", f"Reproduce: `{report['command']}`"]
    for i, task in enumerate(report["tasks"]):
        out += ["", f"## {task['task']}: {task['problems']} {task['split']} problems x {task['n']} samples", ""]
        out += [markdown_table(t) for t in task_tables(task, i)]
    for i, curve in enumerate(report["training"]):
        table = training_table(curve)
        table.figures = [f"training-{i}"]
        out += ["", "## training", "", markdown_table(table)]
    out += ["", "## versions", "", *[f"- {k}: {v}" for k, v in report["versions"].items()], ""]
    return "\n".join(out)


def render_html(report: dict[str, Any], figures: dict[str, bytes]) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(HTML_TEMPLATE).render(
        r=report,
        tasks=[(task, task_tables(task, i)) for i, task in enumerate(report["tasks"])],
        training=[(training_table(c), f"training-{i}") for i, c in enumerate(report["training"])],
        figures={name: base64.b64encode(png).decode() for name, png in figures.items()},
    )


def render_reports(report: dict[str, Any], out: Path) -> None:
    """report.md, report.html and figures/*.png from a report as read back from report.json."""
    figures = report_figures(report)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        (out / "figures" / f"{name}.png").write_bytes(png)
    (out / "report.md").write_text(render_markdown(report))
    (out / "report.html").write_text(render_html(report, figures))


def write_reports(report: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write report.json (strict JSON: no NaN), then the rest from what it holds; returns the report as stored."""
    text = json.dumps(report, indent=1, allow_nan=False)
    (out / "report.json").write_text(text)
    stored = json.loads(text)
    render_reports(stored, out)
    return stored


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What the CLI prints when an eval ends: pass@k of each entry, smallest and largest k."""
    lines = []
    for task in report["tasks"]:
        ks = sorted({task["k"][0], task["k"][-1]})
        for e in task["entries"]:
            stats = [f"pass@{k} {e['aggregate']['pass@k'][str(k)]['mean']:.3f}" for k in ks]
            lines.append(f"{task['task']}  {e['label']}: " + ", ".join(stats))
    return lines
