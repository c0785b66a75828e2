"""Derive a variant of a bundled task for a benchmark: same spec and module, other demonstrations.

A variant is a task folder in a temporary directory: the base task's `task.yaml` (renamed, optionally edited)
and a `task.py` that loads the base module as `_base` and overrides what it must (usually `demo`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from agentrl.tasks import BUNDLED_TASKS

LOAD_BASE = """import importlib.util

_spec = importlib.util.spec_from_file_location("{module}", {path!r})
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)

"""


def derive_task(
    root: Path,
    base: str,
    name: str,
    description: str,
    task_py: str,
    edit: Callable[[dict[str, Any]], None] = lambda spec: None,
) -> Path:
    """Write the variant `name` of bundled task `base` under `root`; `task_py` is the module's body after the
    base is loaded as `_base` (it must define or re-export every function task.yaml names)."""
    source = BUNDLED_TASKS / base
    spec = yaml.safe_load((source / "task.yaml").read_text())
    spec["name"], spec["description"] = name, description
    edit(spec)
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    module = base.replace("-", "_") + "_base"
    (folder / "task.py").write_text(LOAD_BASE.format(module=module, path=str(source / "task.py")) + task_py)
    return folder
