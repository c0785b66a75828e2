"""`agentrl tasks list`: what tasks there are, read from their task.yaml alone (no task.py is imported)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from agentrl.bundled import bundled_dir
from agentrl.config import format_validation_error, read_yaml
from agentrl.errors import AgentRLError
from agentrl.tasks import TaskSpec


@dataclass
class TaskEntry:
    folder: Path
    spec: TaskSpec | None
    problem: str | None = None
    """Why the folder is not a loadable task (None when it looks fine; `tasks validate` checks deeper)."""

    @property
    def shown_folder(self) -> str:
        """The folder relative to the working directory when it lies below it."""
        folder = self.folder.resolve()
        return str(folder.relative_to(Path.cwd())) if folder.is_relative_to(Path.cwd()) else str(folder)


def find_tasks(folders: list[Path] | None = None) -> list[TaskEntry]:
    """Every `*/task.yaml` under `folders` (default: the bundled tasks), sorted by folder."""
    entries = []
    for parent in folders or [bundled_dir("tasks")]:
        if (parent / "task.yaml").is_file():  # a task folder itself
            paths = [parent / "task.yaml"]
        elif parent.is_dir():
            paths = sorted(parent.glob("*/task.yaml"))
        else:
            raise AgentRLError(f"{parent}: no such folder")
        entries.extend(_entry(path.parent) for path in paths)
    return entries


def _entry(folder: Path) -> TaskEntry:
    try:
        spec = TaskSpec.model_validate(read_yaml(folder / "task.yaml"))
    except AgentRLError as exc:
        return TaskEntry(folder, None, str(exc))
    except ValidationError as exc:
        return TaskEntry(folder, None, format_validation_error(exc))
    missing = None if (folder / "task.py").is_file() else "task.py is missing"
    return TaskEntry(folder, spec, missing)
