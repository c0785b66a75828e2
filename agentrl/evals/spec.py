"""What an eval runs: tasks x models x tools on/off, with n samples per problem and the k of pass@k.

One `EvalSpec` comes from the command line or from a suite file (`evals/*.yaml`, the same fields), so that
`agentrl eval --suite evals/X.yaml` reproduces a table. Options given on the command line override the suite.
A suite that is not a file there is looked up among the bundled suites (`--suite X` works from any folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentrl.bundled import bundled_dir
from agentrl.config import format_validation_error, read_yaml
from agentrl.errors import AgentRLError

DEFAULT_K = [1, 2, 4, 8, 16]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ModelRef(_Strict):
    path: str
    """A local transformers model directory, a run directory `runs/NAME` (its newest checkpoint), or a
    checkpoint inside one (`runs/NAME/sft_model`, `runs/NAME/checkpoints/step-000010`)."""
    label: str | None = None
    """The name shown in tables and plots (default: derived from the path)."""


class TaskRef(_Strict):
    name: str
    """A bundled task name or a path to a task folder."""
    split: Literal["train", "test"] | None = None
    """Overrides the eval's split for this task."""
    problems: int | None = Field(None, ge=1)
    """Overrides the eval's problem count for this task."""
    set: list[str] = []
    """Config overrides for this task only (`rollout.max_new_tokens=64`)."""


def _names_to_refs(value: Any, key: str) -> Any:
    """`[a, b]` -> `[{key: a}, {key: b}]`: a bare string is the common case in suite files."""
    if isinstance(value, list):
        return [{key: item} if isinstance(item, str) else item for item in value]
    return value


class EvalSpec(_Strict):
    name: str | None = None
    """The suite's name (shown as the report's title)."""
    description: str = ""
    """What the suite measures; shown under the title."""
    tasks: list[TaskRef] = Field(min_length=1)
    """Tasks to evaluate."""
    models: list[ModelRef] = Field(min_length=1)
    """Models or checkpoints, compared side by side; the first is the baseline of the comparisons."""
    tools: list[bool] = [True]
    """Evaluate with the task's tools (true), as the text-only baseline (false), or both ([true, false])."""
    split: Literal["train", "test"] = "test"
    """The problem split."""
    problems: int | None = Field(None, ge=1)
    """Problems per task (default: the config's eval.problems)."""
    n: int = Field(16, ge=1)
    """Samples per problem."""
    k: list[int] = DEFAULT_K
    """The k of pass@k and pass^k; each must be at most n."""
    batch: int | None = Field(None, ge=1)
    """Problems sampled together in one batch (default: as many as make about 128 trajectories)."""
    set: list[str] = []
    """Config overrides for every task (`eval.temperature=0.7`)."""
    config: str | None = None
    """A YAML config file applied under `set`."""
    out: str | None = None
    """Output directory (default: the run's eval/ folder when every model is from one run, else
    runs/eval-TASK-TIME, reusing the newest such folder that holds this same eval)."""

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_names(cls, value: Any) -> Any:
        return _names_to_refs(value, "name")

    @field_validator("models", mode="before")
    @classmethod
    def _model_paths(cls, value: Any) -> Any:
        return _names_to_refs(value, "path")

    @field_validator("tools", mode="before")
    @classmethod
    def _one_bool(cls, value: Any) -> Any:
        return [value] if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _check_k(self) -> EvalSpec:
        if not self.k or any(k < 1 for k in self.k):
            raise ValueError(f"k must be a list of positive integers, got {self.k}")
        if max(self.k) > self.n:
            raise ValueError(
                f"pass@{max(self.k)} needs at least {max(self.k)} samples per problem, but n={self.n}: "
                f"raise --n or lower --k"
            )
        self.k = sorted(set(self.k))
        if len(set(self.tools)) != len(self.tools):
            raise ValueError(f"tools lists a setting twice: {self.tools}")
        return self

    @property
    def batch_problems(self) -> int:
        return self.batch or max(1, 128 // self.n)


def build_spec(data: dict[str, Any], where: str = "eval options") -> EvalSpec:
    try:
        return EvalSpec.model_validate(data)
    except ValidationError as exc:
        raise AgentRLError(f"{where}: {format_validation_error(exc)}") from None


def load_suite(path: str | Path) -> dict[str, Any]:
    """A suite file's fields, unvalidated (the command line's options are merged on top)."""
    data = read_yaml(path)
    unknown = set(data) - set(EvalSpec.model_fields)
    if unknown:
        known = ", ".join(EvalSpec.model_fields)
        raise AgentRLError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a suite has: {known}")
    return data


def resolve_suite(suite: str | Path) -> Path:
    """The suite file at `suite` when there is one, else the bundled suite it names: `X`, `X.yaml` or
    `evals/X.yaml` (found from any working folder)."""
    path = Path(suite)
    if path.is_file():
        return path
    suites = bundled_dir("evals")
    if path.parent in (Path("."), Path("evals")):
        bundled = suites / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
        if bundled.is_file():
            return bundled
    known = ", ".join(sorted(p.stem for p in suites.glob("*.yaml")))
    raise AgentRLError(f"suite {str(suite)!r} not found: give a suite file, or a bundled suite: {known}")


def spec_from_options(suite: str | Path | None, options: dict[str, Any]) -> EvalSpec:
    """The suite's fields (if any) with every option that was given (not None) on top."""
    data = load_suite(resolve_suite(suite)) if suite is not None else {}
    data.update({key: value for key, value in options.items() if value is not None})
    if not data.get("tasks"):
        raise AgentRLError("no task to evaluate: give TASK, or --suite FILE with a tasks: list")
    if not data.get("models"):
        raise AgentRLError("no model to evaluate: give --model DIR_OR_RUN (or several with --compare)")
    return build_spec(data, str(suite) if suite is not None else "eval options")
