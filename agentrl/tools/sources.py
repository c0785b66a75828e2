"""Where a tool's data comes from: a file or folder in the task, or a function of the task's `task.py`.

A setting such as `corpus: corpus.jsonl` names a path relative to the task folder; `corpus: task.py:corpus`
names a function of task.py that generates the data (a procedurally generated site or corpus needs no files).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentrl.config import format_validation_error
from agentrl.errors import AgentRLError
from agentrl.tasks import Task

FUNCTION_PREFIX = "task.py:"


def task_yaml(task: Task) -> Path:
    return task.root / "task.yaml"


def is_function_ref(ref: str) -> bool:
    return ref.startswith(FUNCTION_PREFIX)


def call_task_function(task: Task, ref: str, what: str) -> Any:
    """Call `task.py:NAME` with no arguments; errors name task.yaml and the setting."""
    name = ref.removeprefix(FUNCTION_PREFIX)
    fn: Callable[[], Any] | None = getattr(task.module, name, None)
    if not callable(fn):
        raise AgentRLError(f"{task_yaml(task)}: {what}: {ref} names no function {name}() in {task.root}/task.py")
    try:
        return fn()
    except Exception as exc:
        raise AgentRLError(f"{task.root}/task.py: {name}() (the {what}) raised {type(exc).__name__}: {exc}") from exc


def task_path(task: Task, ref: str, what: str, folder: bool = False) -> Path:
    """A path inside the task folder that must exist (a file, or a folder with `folder`)."""
    path = (task.root / ref).resolve()
    if not (path.is_dir() if folder else path.is_file()):
        kind = "folder" if folder else "file"
        raise AgentRLError(
            f"{task_yaml(task)}: {what}: {kind} {ref!r} not found in {task.root} "
            f"(give a path relative to the task folder, or {FUNCTION_PREFIX}NAME for a function of task.py)"
        )
    return path


def parse_settings(model: type[BaseModel], task: Task, tool: str, settings: dict[str, Any]) -> Any:
    """Validate a tool's settings from task.yaml; errors name the file, the tool and the key."""
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        raise AgentRLError(f"{task_yaml(task)}: tools.{tool}: {format_validation_error(exc)}") from None
