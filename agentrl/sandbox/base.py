"""The sandbox protocol: what every backend (local, docker, e2b) offers, and the one result type.

A `Sandbox` owns isolated machinery (a bubblewrap container, a Docker container, an E2B VM); a
`Session` is one stateful Python kernel inside it, behaving like a notebook kernel: variables,
imports and files persist across `run()` calls, the value of the final expression is shown, errors
carry name, value and traceback, and a cell that times out or crashes leaves the state from before
it. This module knows nothing of how a backend isolates code; it must never import one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ExecError:
    """An exception raised by a cell (or a crash of its process, named like one)."""

    name: str
    """Exception class name, e.g. "NameError", or "SandboxCrash" / "MemoryError" / "SystemExit"."""
    value: str
    """str() of the exception: the message."""
    traceback: str = ""
    """Formatted traceback, limited to the cell's own frames."""

    def summary(self) -> str:
        return f"{self.name}: {self.value}" if self.value else self.name


@dataclass(frozen=True)
class ExecResult:
    """What one `Session.run()` did."""

    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    """repr() of the cell's final expression value, or None (no expression, or it was None)."""
    error: ExecError | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    truncated: bool = False
    """True when output beyond `max_output_bytes` was dropped."""

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out

    def output(self, max_chars: int | None = None) -> str:
        """A compact text of the cell's effect, for feeding back to a model."""
        parts = [self.stdout.rstrip("\n")] if self.stdout else []
        if self.stderr:
            parts.append(self.stderr.rstrip("\n"))
        if self.result is not None:
            parts.append(self.result)
        if self.error is not None:
            parts.append((self.error.traceback or self.error.summary()).rstrip("\n"))
        if self.truncated:
            parts.append("[output truncated]")
        text = "\n".join(p for p in parts if p)
        if max_chars is not None and len(text) > max_chars:
            half = max_chars // 2
            text = text[:half] + "\n...[truncated]...\n" + text[-half:]
        return text


@dataclass(frozen=True)
class Limits:
    """Resource limits of a sandbox; every session of it gets them."""

    timeout: float = 10.0
    """Default per-cell wall-clock limit in seconds (run(timeout=) overrides it)."""
    memory_mb: int = 2048
    """Address-space limit of each kernel process (RLIMIT_AS) in MiB."""
    cpu_s: int = 60
    """CPU seconds one cell may use (RLIMIT_CPU of the process that runs it)."""
    max_output_bytes: int = 65536
    """stdout + stderr kept per cell; the rest is dropped and `truncated` is set."""
    file_size_mb: int = 64
    """Largest file a cell may write (RLIMIT_FSIZE) in MiB."""
    disk_mb: int = 512
    """Size of each writable filesystem (the workdirs and /tmp) in MiB."""
    max_procs: int = 128
    """Processes plus threads one session family (a session and all its forks) may hold; each
    session needs one at rest and two while a cell runs, so wide fork trees need more."""
    max_open_files: int = 256
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    preload: tuple[str, ...] = ()
    """Modules imported once when the sandbox starts, so cells import them for free."""
    files: dict[str, bytes | str] = field(default_factory=dict)
    """Files copied into each new session's working directory (relative path -> content)."""

    def kernel_limits(self) -> dict[str, int]:
        """The limits the in-sandbox kernel enforces itself, as sent to it at start."""
        return {
            "memory_mb": self.memory_mb,
            "cpu_s": self.cpu_s,
            "file_size_mb": self.file_size_mb,
            "max_open_files": self.max_open_files,
            "max_procs": self.max_procs,
            "max_output_bytes": self.max_output_bytes,
        }


@runtime_checkable
class Session(Protocol):
    """One stateful Python kernel."""

    def run(self, code: str, timeout: float | None = None) -> ExecResult: ...

    def fork(self) -> Session: ...

    def close(self) -> None: ...


@runtime_checkable
class Sandbox(Protocol):
    """Isolated machinery that hosts sessions; a context manager, closed deterministically."""

    limits: Limits

    def session(self) -> Session: ...

    def close(self) -> None: ...

    def __enter__(self) -> Sandbox: ...

    def __exit__(self, *exc: object) -> None: ...
