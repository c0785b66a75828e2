"""A sweep: a task, a grid of config values, seeds. Each grid point x seed is one ordinary run directory.

    runs/NAME/
      sweep.yaml                    the spec, as given
      POINT/seed-S/                 an `agentrl train` run directory (config, metrics, rollouts, checkpoints)
      report.json, report.md,       `agentrl sweep` writes them after its runs (and `--report` alone)
      curves.png

A point's folder name is its settings, `key-value` joined by `_` with each key's last part (the full key where
two would collide): `--grid algo.advantage=grpo,rloo` gives `advantage-grpo` and `advantage-rloo`. Points that are
not a cross product (Tree-GRPO needs both a sampler and an estimator) are named in `points:`, each a list of
settings; the grid, if any, then runs at each of them (`tree_advantage-grpo`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentrl.config import format_validation_error, read_yaml
from agentrl.errors import AgentRLError


@dataclass(frozen=True)
class Point:
    label: str
    """The point's folder name."""
    overrides: tuple[str, ...]
    """Its `key=value` settings, applied over the sweep's `sets`."""


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    name: str
    """The sweep's folder under the runs directory."""
    task: str
    """A bundled task's name or a task folder."""
    points: dict[str, list[str]] = {}
    """Named points: name -> its `key=value` settings. The grid's cross product runs at each (or alone, if none)."""
    grid: dict[str, list[Any]] = {}
    """Config key -> the values to try; the sweep runs the cross product."""
    seeds: int = Field(3, ge=1)
    """Runs per point, with train.seed 0 .. seeds-1."""
    sets: list[str] = []
    """`key=value` settings shared by every run."""
    baseline: str | None = None
    """The point the report's paired differences are taken against (its label); default: the first point."""
    match: Literal["steps", "tokens", "seconds"] = "steps"
    """What every point spends equally: RL steps (train.steps), or tokens sampled in RL, or seconds of RL steps.
    With tokens or seconds each run stops once it has spent `budget`, by default what the baseline point's run of
    the same seed spent in its train.steps (the baseline's runs go first)."""
    budget: float | None = Field(None, gt=0)
    """With match tokens or seconds: the budget of every run, the baseline's too (default: the baseline's spend)."""
    max_steps: int | None = Field(None, ge=1)
    """With match tokens or seconds: the most RL steps a run may take to spend its budget (default: 4 x its
    train.steps)."""
    share_cold_start: bool = True
    """Runs of one seed whose points differ only in RL settings (estimator, sampler shape, RL budget, RL learning
    rate...) share one cold start: the first to finish SFT and the evaluation before RL hands both to the others,
    which continue exactly as if they had run it (`agentrl.train.start`)."""

    @field_validator("grid")
    @classmethod
    def _values_given(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [key for key, values in grid.items() if not values]
        if empty:
            raise ValueError(f"no values for {', '.join(empty)}")
        return grid

    @model_validator(mode="after")
    def _budget_needs_a_match(self) -> SweepSpec:
        if self.match == "steps" and (self.budget is not None or self.max_steps is not None):
            raise ValueError("budget and max_steps apply with match: tokens or seconds (match is steps)")
        return self

    @field_validator("points")
    @classmethod
    def _names_are_folders(cls, points: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = [name for name in points if _slug(name) != name]
        if bad:
            raise ValueError(f"point names are folder names (letters, digits, . + -): {', '.join(bad)}")
        return points

    def grid_points(self) -> list[Point]:
        """The named points (or one unnamed) x the grid's cross product, in the order the spec lists them."""
        keys = list(self.grid)
        short = _short_names(keys)
        named = [Point(name, tuple(settings)) for name, settings in self.points.items()] or [Point("", ())]
        points = []
        for base in named:
            for values in itertools.product(*(self.grid[k] for k in keys)):
                parts = [base.label] if base.label else []
                parts += [f"{short[k]}-{_slug(v)}" for k, v in zip(keys, values, strict=True)]
                overrides = tuple(f"{k}={_yaml(v)}" for k, v in zip(keys, values, strict=True))
                points.append(Point("_".join(parts) or "base", base.overrides + overrides))
        labels = [p.label for p in points]
        clashes = sorted({label for label in labels if labels.count(label) > 1})
        if clashes:
            raise AgentRLError(f"sweep {self.name}: grid values that differ only in punctuation: {', '.join(clashes)}")
        return points

    def baseline_point(self) -> Point:
        points = self.grid_points()
        if self.baseline is None:
            return points[0]
        for point in points:
            if point.label == self.baseline:
                return point
        raise AgentRLError(
            f"sweep baseline {self.baseline!r}: no such point (points: {', '.join(p.label for p in points)})"
        )


def _short_names(keys: list[str]) -> dict[str, str]:
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else _yaml(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "+", text).strip("+") or "none"


def _yaml(value: Any) -> str:
    """`value` as --set reads it back (YAML flow style: [aspo], true, 0.5)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def split_values(text: str) -> list[str]:
    """`a,b,[c,d]` -> ['a', 'b', '[c,d]']: commas inside brackets or braces belong to the value."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    return [v.strip() for v in values if v.strip()]


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`--grid key=v1,v2` options -> {key: [v1, v2]}, each value read as YAML (as --set reads it)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not split_values(raw):
            raise AgentRLError(f"bad --grid {item!r}: expected key=value1,value2,..., e.g. algo.advantage=grpo,rloo")
        grid[key.strip()] = [yaml.safe_load(v) for v in split_values(raw)]
    return grid


def build_spec(
    spec_file: str | Path | None,
    task: str | None,
    grid: list[str],
    sets: list[str],
    **options: Any,
) -> SweepSpec:
    """The sweep the command line describes: a YAML spec, or TASK with --grid and --set; options given (name, seeds,
    baseline...) override the spec's, and TASK given with a spec runs it on TASK, named `SPECNAME-TASK`. An unknown
    baseline fails here, before any training."""
    if spec_file is not None:
        data = read_yaml(spec_file)
        if task is not None:  # the spec's sweep on another task, in a folder of its own
            data["name"] = f"{data.get('name', Path(spec_file).stem)}-{Path(task).name}"
            data["task"] = task
        data["grid"] = {**data.get("grid", {}), **parse_grid(grid)}
        data["sets"] = [*data.get("sets", []), *sets]
    elif task is not None:
        data = {"name": f"{Path(task).name}-sweep", "task": task, "grid": parse_grid(grid), "sets": sets}
    else:
        raise AgentRLError("agentrl sweep: give a TASK (and --grid), or --spec FILE")
    data.update({key: value for key, value in options.items() if value is not None})
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise AgentRLError(f"{spec_file or 'sweep'}: {format_validation_error(exc)}") from None
    spec.baseline_point()
    return spec
