"""`agentrl tasks new`: write a commented task folder that validates and trains as it stands.

The default templates (agentrl/templates/task/) are a small but real task, reversing a word with the python
tool, so a researcher edits working code instead of starting from a blank page. With `reasoning_gym=NAME`,
task.py wraps one of reasoning-gym's procedural datasets instead (generator and scorer from reasoning-gym).
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path

from agentrl.errors import AgentRLError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "task"
NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def reasoning_gym_datasets() -> list[str]:
    """The dataset names of the installed reasoning-gym."""
    if importlib.util.find_spec("reasoning_gym") is None:
        raise AgentRLError("reasoning-gym is not installed: pip install 'agentrl[reasoning-gym]'")
    import reasoning_gym

    return sorted(reasoning_gym.factory.DATASETS)


def scaffold_task(name: str, parent: str | Path = ".", reasoning_gym: str | None = None) -> Path:
    """Create `parent/name/` with task.yaml and task.py; returns the folder. Never overwrites."""
    from agentrl.tools import TOOL_BUILDERS

    if not NAME.fullmatch(name):
        raise AgentRLError(
            f"task name {name!r}: use lowercase letters, digits, '-' and '_', starting with a letter (e.g. my-task)"
        )
    root = Path(parent) / name
    if root.exists():
        raise AgentRLError(f"{root} already exists: choose another name or --dir")
    values = {
        "__TASK_NAME__": name,
        "__TASK_PATH__": str(root),
        "__KNOWN_TOOLS__": ", ".join(sorted(TOOL_BUILDERS)),
        "__DESCRIPTION__": "Reverse a made-up word letter by letter, with the python tool.",
        "__MAX_NEW_TOKENS__": "32",
    }
    task_py = "task.py.tmpl"
    if reasoning_gym is not None:
        known = reasoning_gym_datasets()
        if reasoning_gym not in known:
            close = difflib.get_close_matches(reasoning_gym, known, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(known)}"
            raise AgentRLError(f"reasoning-gym has no dataset {reasoning_gym!r}; {hint}")
        values |= {
            "__RG_DATASET__": reasoning_gym,
            "__DESCRIPTION__": f"reasoning-gym's {reasoning_gym} problems, answered in <answer></answer>.",
            "__MAX_NEW_TOKENS__": "64",
        }
        task_py = "reasoning_gym.py.tmpl"
    root.mkdir(parents=True)
    for template, target in (("task.yaml.tmpl", "task.yaml"), (task_py, "task.py")):
        text = (TEMPLATES / template).read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        (root / target).write_text(text)
    return root
