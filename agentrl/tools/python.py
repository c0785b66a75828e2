"""The `python` tool: a stateful sandbox session per trajectory (variables persist across calls)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from agentrl.config import Config
from agentrl.errors import AgentRLError
from agentrl.sandbox import Sandbox, Session, open_sandbox
from agentrl.tasks import Task
from agentrl.tools import register_tool
from agentrl.tools.base import ToolResult, truncate


class PythonState:
    """Opens the session on first use, so trajectories that never call python cost nothing."""

    def __init__(self, sandbox: Sandbox):
        self._sandbox = sandbox
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self._sandbox.session()
        return self._session

    def fork(self) -> PythonState:
        """A copy with the same variables: the kernel forks (copy-on-write); an unopened state stays unopened."""
        copy = PythonState(self._sandbox)
        if self._session is not None:
            copy._session = self._session.fork()
        return copy

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


class PythonTool:
    name = "python"
    description = (
        "Run Python code in a persistent session (variables and imports stay between calls). Returns what the "
        "code prints and the value of its last expression, or the error."
    )
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python code; the last expression is shown."}},
        "required": ["code"],
    }

    def __init__(self, sandbox: Sandbox, timeout: float, max_chars: int):
        self.sandbox = sandbox
        self.timeout = timeout
        self.max_chars = max_chars

    def open_state(self) -> PythonState:
        return PythonState(self.sandbox)

    def run(self, args: dict[str, Any], state: PythonState) -> ToolResult:
        code = args.get("code")
        if not isinstance(code, str):
            return ToolResult('python needs a "code" string argument', error="bad_arguments")
        try:
            result = state.session.run(code, timeout=self.timeout)
        except Exception as exc:  # a dead sandbox fails this step, never the batch
            state.close()
            return ToolResult(f"sandbox failed: {type(exc).__name__}: {exc}", error="sandbox_died")
        error = "timeout" if result.timed_out else ("tool_error" if result.error is not None else None)
        return ToolResult(truncate(result.output().strip(), self.max_chars), error=error)


@register_tool("python")
def build_python(task: Task, cfg: Config, settings: dict[str, Any], stack: ExitStack) -> PythonTool:
    """One sandbox for the run; each trajectory gets its own session. Settings: none (see `sandbox:`)."""
    if settings:
        raise AgentRLError(f"{task.root / 'task.yaml'}: the python tool takes no settings (use sandbox:)")
    sandbox = stack.enter_context(
        open_sandbox(
            backend=cfg.sandbox.backend,
            timeout=cfg.sandbox.timeout,
            memory_mb=cfg.sandbox.memory_mb,
            preload=task.spec.sandbox.preload,
            files={k: (task.root / v).read_bytes() for k, v in task.spec.sandbox.files.items()},
            **({"runtime": cfg.sandbox.runtime} if cfg.sandbox.runtime else {}),
        )
    )
    return PythonTool(sandbox, cfg.sandbox.timeout, cfg.rollout.max_observation_chars)
