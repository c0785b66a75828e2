"""Task folders: `task.yaml` (what the task is and which tools it uses) plus `task.py` (data, verifier, demos).

`task.py` defines three plain functions:
- `generate(split: str, n: int, seed: int) -> list[dict]`: problems with at least "prompt" and "answer";
  use `agentrl.tasks.in_split` so that train and test are disjoint;
- `verify(problem: dict, answer: str | None) -> float`: the reward of a final answer (1.0 = correct);
- `demo(problem: dict) -> list[str | dict]`: an expert's assistant messages (tool calls, then the answer), each
  a text in the task's format or, better, structured: `{"content": str, "tool_calls": [{"name": ..., "arguments":
  {...}}]}`, which every format writes its own way (a fenced block, hermes tags, the model's own template).
Tasks know nothing of trainers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from agentrl.bundled import bundled_dir, bundled_path
from agentrl.config import format_validation_error, read_yaml
from agentrl.errors import AgentRLError

DemoMessage = str | dict[str, Any]
"""An expert's assistant message: text in the task's format, or {"content": ..., "tool_calls": [...]}."""
BUNDLED_TASKS = bundled_path("tasks")
REQUIRED_FUNCTIONS = ("generate", "verify", "demo")


class SandboxSetup(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    preload: list[str] = []
    """Modules imported once when the kernel starts."""
    files: dict[str, str] = {}
    """Workdir path -> path (relative to the task folder) of a file copied in at session start."""


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    name: str
    description: str = ""
    tools: dict[str, dict[str, Any]] = {}
    """Tools the agent may call, with their settings: a list of names (`[python, search]`) or a mapping of
    name -> settings (`{search: {corpus: corpus.jsonl}}`)."""
    format: Literal["fenced", "hermes", "native"] = "fenced"
    """Tool-call format: fenced ```python blocks, hermes <tool_call> JSON (both learned from demonstrations by
    the tiny model), or native: the model's own chat template and tool-calling convention (pretrained models).
    `rollout.format` overrides it per run."""
    system_prompt: str | None = None
    instructions: str | None = None
    """How to answer, told to models that read instructions (native format adds it to the system message; the
    text formats leave it out: their model learns the convention from the demonstrations)."""
    sandbox: SandboxSetup = SandboxSetup()
    policies: list[dict[str, Any]] = []
    """Guard policies (checked by agentrl.guard)."""
    defaults: dict[str, Any] = {}
    """Config values this task sets (under the user's --config and --set)."""

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names_to_settings(cls, value: Any) -> Any:
        """`[python, {search: {...}}]` -> `{python: {}, search: {...}}`."""
        if not isinstance(value, list):
            return value
        tools: dict[str, Any] = {}
        for item in value:
            if isinstance(item, str):
                tools[item] = {}
            elif isinstance(item, dict) and len(item) == 1:
                tools.update({k: v or {} for k, v in item.items()})
            else:
                raise ValueError(f"a tool is a name or a one-key mapping name: settings, not {item!r}")
        return tools


@dataclass
class Problem:
    id: str
    prompt: str
    answer: str
    data: dict[str, Any]


def in_split(text: str, split: str, test_fraction: float = 0.2) -> bool:
    """Deterministic, seed-independent split by content hash: train and test never share a problem."""
    bucket = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return (bucket < test_fraction) == (split == "test")


class Task:
    def __init__(self, root: Path, spec: TaskSpec, module: ModuleType):
        self.root, self.spec, self.module = root, spec, module

    @property
    def name(self) -> str:
        return self.spec.name

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        if split not in ("train", "test"):
            raise AgentRLError(f"unknown split {split!r}: use train or test")
        out = []
        for i, raw in enumerate(self.module.generate(split, n, seed)):
            if "prompt" not in raw or "answer" not in raw:
                raise AgentRLError(f"{self.root}/task.py: generate() must return dicts with prompt and answer")
            out.append(Problem(str(raw.get("id", f"{split}-{seed}-{i}")), raw["prompt"], str(raw["answer"]), raw))
        return out

    def verify(self, problem: Problem, answer: str | None) -> float:
        try:
            return float(self.module.verify(problem.data, answer))
        except Exception as exc:
            raise AgentRLError(
                f"{self.root}/task.py: verify() raised {type(exc).__name__}: {exc} "
                f"(problem {problem.id}, answer {answer!r}); a verifier must return a score for any answer"
            ) from exc

    def demo(self, problem: Problem) -> list[DemoMessage]:
        messages = list(self.module.demo(problem.data))
        for message in messages:
            demo_calls(message, f"{self.root}/task.py: demo()")
        return messages

    def messages(self, problem: Problem, instructions: bool = False) -> list[dict[str, str]]:
        """The prompt's messages; with `instructions`, the task's `instructions:` join the system prompt."""
        parts = [self.spec.system_prompt, self.spec.instructions if instructions else None]
        system = "\n\n".join(p for p in parts if p)
        return [
            *([{"role": "system", "content": system}] if system else []),
            {"role": "user", "content": problem.prompt},
        ]

    @cached_property
    def vocabulary_sample(self) -> list[str]:
        """Text for training a tokenizer: prompts and expert demonstrations of the train split."""
        texts = []
        for problem in self.problems("train", 300, seed=12345):
            texts.append(problem.prompt)
            texts.extend(demo_text(m, self.spec.format) for m in self.demo(problem))
        return texts


def demo_calls(message: DemoMessage, where: str = "demo") -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """(content, [(tool name, arguments)]) of a demonstration message; a text message carries no structured calls."""
    if isinstance(message, str):
        return message, []
    shape = '{"content": str, "tool_calls": [{"name": str, "arguments": {...}}]}'
    if not (isinstance(message, dict) and set(message) <= {"content", "tool_calls"}):
        raise AgentRLError(f"{where}: a message is a string or {shape}, not {message!r}")
    calls = message.get("tool_calls") or []
    if not isinstance(message.get("content", ""), str) or not isinstance(calls, list):
        raise AgentRLError(f"{where}: a message is a string or {shape}, not {message!r}")
    out = []
    for call in calls:
        if not (
            isinstance(call, dict) and isinstance(call.get("name"), str) and isinstance(call.get("arguments"), dict)
        ):
            raise AgentRLError(f"{where}: a message is a string or {shape}; this tool call is not: {call!r}")
        out.append((call["name"], call["arguments"]))
    return message.get("content", ""), out


def demo_text(message: DemoMessage, fmt: str) -> str:
    """A demonstration message as text in a text format: fenced ```python blocks or compact hermes tags (native
    format renders structured messages with the model's template instead; here it gets hermes tags)."""
    content, calls = demo_calls(message)
    if fmt == "fenced":
        others = [name for name, _ in calls if name != "python"]
        if others:
            raise AgentRLError(f"fenced format calls only the python tool, but a demo calls {', '.join(others)}")
        written = [f"```python\n{args['code']}\n```" for _, args in calls]
    else:
        written = [f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>" for name, args in calls]
    return "\n".join([content, *written] if content else written) if calls else content


def resolve_task_path(name_or_path: str) -> Path:
    """A task folder given by path, else a bundled task of that name (found from any working folder)."""
    path = Path(name_or_path)
    if (path / "task.yaml").is_file():
        return path
    bundled_tasks = bundled_dir("tasks")
    bundled = bundled_tasks / name_or_path
    if (bundled / "task.yaml").is_file():
        return bundled
    known = ", ".join(sorted(p.parent.name for p in bundled_tasks.glob("*/task.yaml")))
    raise AgentRLError(f"task {name_or_path!r} not found: give a folder with a task.yaml, or one of: {known}")


def load_task(name_or_path: str) -> Task:
    root = resolve_task_path(name_or_path)
    try:
        spec = TaskSpec.model_validate(read_yaml(root / "task.yaml"))
    except ValidationError as exc:
        raise AgentRLError(f"{root / 'task.yaml'}: {format_validation_error(exc)}") from None
    module_path = root / "task.py"
    if not module_path.is_file():
        raise AgentRLError(f"{root}: task.py is missing (it defines {', '.join(REQUIRED_FUNCTIONS)})")
    spec_obj = importlib.util.spec_from_file_location(f"agentrl_task_{spec.name.replace('-', '_')}", module_path)
    module = importlib.util.module_from_spec(spec_obj)
    sys.modules[spec_obj.name] = module  # dataclasses and pickle look their module up there
    try:
        spec_obj.loader.exec_module(module)
    except Exception as exc:
        raise AgentRLError(f"{module_path}: failed to import: {type(exc).__name__}: {exc}") from exc
    missing = [f for f in REQUIRED_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise AgentRLError(f"{module_path}: missing function(s) {', '.join(missing)}")
    return Task(root, spec, module)


def task_reference(task: Task) -> str:
    """How another process (a Ray worker) finds `task`: a bundled task by its name, read from that machine's own
    install wherever agentrl lives there; any other task by its absolute path."""
    root = task.root.resolve()
    return root.name if root.parent == BUNDLED_TASKS.resolve() else str(root)


def list_tasks() -> list[Task]:
    return [load_task(str(p.parent)) for p in sorted(bundled_dir("tasks").glob("*/task.yaml"))]


def task_config(name_or_path: str, config_file: str | Path | None = None, overrides: Sequence[str] = ()):
    """The run config of a task as `agentrl train` resolves it: defaults < the task's `defaults:` < the YAML file
    < `--set` overrides. Returns `(config, task)`."""
    from agentrl.config import build_config

    task = load_task(name_or_path)
    layers = [{"task": name_or_path}, task.spec.defaults]
    if config_file is not None:
        layers.append(read_yaml(config_file))
    return build_config(layers, list(overrides)), task
