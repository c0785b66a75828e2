"""The e2b backend: sessions are code contexts in an E2B cloud sandbox.

For runs without a Linux host that allows user namespaces, or that want a VM boundary. One E2B
sandbox (a Firecracker VM from the template in `sandboxes/e2b/`) per `Sandbox`; one code context per
`Session`, with its own working directory. E2B contexts cannot be copied, so:

- ``fork()`` replays: it creates a new context, copies the working directory, and re-runs every
  cell that succeeded in the source session (outputs discarded). State built from randomness,
  time or the network may differ from the original; side effects of those cells happen again.
- A cell that times out or crashes is rolled back the same way: the context is replaced by a
  replay of the session's successful cells, so the session keeps its state from before the cell
  (as the local backend does) at the cost of that replay.

Each cell of the history is replayed with the time limit it ran under. A replay that fails (a cell that
succeeded before now errs or times out) loses the session: its next cells answer with that error instead of
running on a state that is not the one the model saw.

Time limits are agentrl's own: each cell's ``run_code`` runs in a thread the host waits on for ``timeout`` seconds
(the SDK's own timeout stays as a backstop: it fires late, at twice the time, e2b-dev/E2B issue 1881). A cell still
running then has its code context removed, which stops it, and the session rolls back as above.

Output is capped as it streams in: a cell keeps ``max_output_bytes`` characters of stdout and stderr in all (stdout
first), drops the rest and sets ``truncated``, and goes on. The SDK also keeps every streamed line itself, so a cell
whose output passes ``max(8 * max_output_bytes, 1 MiB)`` characters is stopped there and rolled back, with the error
``OutputLimitExceeded``: the host holds at most that much of a cell's output (plus the line that crossed it).

Memory, disk and processes are the template's VM (a warning names the limits that are set but not enforced). The VM
has no internet unless ``allow_internet=True``. It lives ``LIFETIME`` seconds past its last use (extended while in
use) and is killed on close and at exit. Needs ``pip install 'agentrl[e2b]'`` and E2B_API_KEY (or ``api_key=``);
imported only when used.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
import weakref

from agentrl.errors import AgentRLError
from agentrl.sandbox.base import ExecError, ExecResult, Limits

DEFAULT_TEMPLATE = None  # E2B's code-interpreter template; or the one built from sandboxes/e2b/
LIFETIME = 600
"""Seconds the VM outlives its last use: E2B kills it then, so a host that died leaves no VM running for long."""
UNENFORCED = ("memory_mb", "cpu_s", "disk_mb", "file_size_mb", "max_procs", "max_open_files")
"""Limits the e2b backend leaves to the template's VM."""


class ReplayFailed(Exception):
    """A cell that succeeded before failed when replayed: the session's state cannot be rebuilt."""


class OutputLimitExceeded(Exception):
    """Raised from the SDK's output callback to stop a cell whose output passed the ceiling."""


class _Output:
    """A cell's stdout and stderr as the SDK streams them: each keeps at most `limit` characters and the rest is
    counted. The SDK also keeps every line it streams (Execution.logs), so past `ceiling` characters in all the
    callback raises, which ends the stream and so bounds the host's memory. The ceiling is well above the cap so that
    a cell printing somewhat more than the cap (progress lines, a large table) runs to its end with its state, as in
    the local backend, while endless output is stopped after a bounded amount; 1 MiB at least, so that a small cap
    does not stop ordinary cells."""

    def __init__(self, limit: int):
        self.limit = limit
        self.ceiling = max(8 * limit, 1 << 20)
        self.kept = {"stdout": "", "stderr": ""}
        self.seen = 0

    def on_stdout(self, msg) -> None:
        self._add("stdout", msg.line)

    def on_stderr(self, msg) -> None:
        self._add("stderr", msg.line)

    def _add(self, stream: str, text: str) -> None:
        self.seen += len(text)
        kept = self.kept[stream]
        if len(kept) < self.limit:
            self.kept[stream] = kept + text[: self.limit - len(kept)]
        if self.seen > self.ceiling:
            raise OutputLimitExceeded(f"the cell's output passed {self.ceiling} characters")

    def text(self) -> tuple[str, str, bool]:
        """stdout, stderr (at most `limit` characters in all, stdout first), and whether any was dropped."""
        stdout = self.kept["stdout"]
        return stdout, self.kept["stderr"][: max(0, self.limit - len(stdout))], self.seen > self.limit


class E2BSession:
    def __init__(self, sandbox: E2BSandbox, cwd: str, history: list[tuple[str, float]] | None = None):
        self._sandbox = sandbox
        self.workdir = cwd
        self._history: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._lost: str | None = None
        self._ctx = sandbox._new_context(cwd)
        try:
            for code, timeout in history or []:
                self._replay(code, timeout)
        except ReplayFailed:
            self._drop_context()  # and with it a replayed cell still running
            raise

    def _drop_context(self) -> None:
        """Remove the code context, which stops a cell still running in it."""
        try:
            self._sandbox._sdk.remove_code_context(self._ctx)
        except Exception:
            pass

    def _call(self, code: str, timeout: float, out: _Output):
        """run_code in a daemon thread, waited on for `timeout` seconds: its Execution, or None when the time ran out
        first (the thread ends when the cell's stream does); raises what run_code raised. The SDK's own timeout is a
        backstop: it fires late (e2b-dev/E2B issue 1881)."""
        sdk, ctx, done = self._sandbox._sdk, self._ctx, []

        def call() -> None:
            try:
                done.append(
                    sdk.run_code(code, context=ctx, timeout=timeout, on_stdout=out.on_stdout, on_stderr=out.on_stderr)
                )
            except BaseException as e:
                done.append(e)

        worker = threading.Thread(target=call, daemon=True, name="agentrl-e2b-cell")
        worker.start()
        worker.join(timeout)
        if not done:
            return None
        if isinstance(done[0], BaseException):
            raise done[0]
        return done[0]

    def _replay(self, code: str, timeout: float) -> None:
        """Run a cell of the history again, with the limit it first ran under."""
        try:
            ex = self._call(code, timeout, _Output(self._sandbox.limits.max_output_bytes))
        except Exception as e:
            raise ReplayFailed(f"{type(e).__name__}: {e}") from None
        if ex is None:
            raise ReplayFailed(f"it ran past its {timeout:g} s limit")
        if ex.error is not None:
            raise ReplayFailed(f"{ex.error.name}: {ex.error.value}")
        self._history.append((code, timeout))

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        timeout = self._sandbox.limits.timeout if timeout is None else float(timeout)
        with self._lock:
            if self._closed:
                raise AgentRLError("this sandbox session is closed; open a new one with sandbox.session()")
            if self._lost is not None:
                return ExecResult(error=ExecError("SandboxCrash", self._lost))
            self._sandbox._in_use()
            out = _Output(self._sandbox.limits.max_output_bytes)
            t0 = time.perf_counter()
            try:
                ex = self._call(code, timeout, out)
            except OutputLimitExceeded as e:
                name, why = "OutputLimitExceeded", f"{e}: the cell was stopped"
            except Exception as e:
                name = "TimeoutError" if "timeout" in type(e).__name__.lower() else "SandboxCrash"
                why = str(e)
            else:
                if ex is not None:
                    return self._result(code, timeout, ex, out, time.perf_counter() - t0)
                name, why = "TimeoutError", f"the cell ran past its {timeout:g} s limit"
            # the cell was stopped (time, output) or the sandbox failed: roll the session back to before it
            duration = time.perf_counter() - t0
            stdout, stderr, truncated = out.text()
            error = ExecError(name, f"{why}; {self._rebuild()}")
            return ExecResult(stdout, stderr, None, error, name == "TimeoutError", duration, truncated)

    def _result(self, code: str, timeout: float, ex, out: _Output, duration: float) -> ExecResult:
        stdout, stderr, truncated = out.text()
        main = [r for r in ex.results if getattr(r, "is_main_result", False)]
        result = main[0].text if main else None
        error = None
        if ex.error is not None:
            error = ExecError(ex.error.name, ex.error.value, ex.error.traceback)
            if error.name in ("SystemExit", "MemoryError"):  # as in the local backend, these roll the session back
                error = ExecError(error.name, f"{error.value}; {self._rebuild()}", error.traceback)
        if error is None:
            self._history.append((code, timeout))
        return ExecResult(stdout, stderr, result, error, False, duration, truncated)

    def _rebuild(self) -> str:
        """Replace the context by a replay of the successful cells (the state from before the cell); what became
        of the session, for the error message."""
        self._drop_context()
        history, self._history = self._history, []
        try:
            self._ctx = self._sandbox._new_context(self.workdir)
            for code, timeout in history:
                self._replay(code, timeout)
        except (ReplayFailed, AgentRLError) as e:
            self._lost = f"the session was lost: rebuilding its state by replay failed ({e})"
            return self._lost
        return "state rolled back by replay"

    def fork(self) -> E2BSession:
        with self._lock:
            cwd = self._sandbox._workdir()
            self._sandbox._sdk.run_code(
                f"import shutil; shutil.copytree({self.workdir!r}, {cwd!r}, dirs_exist_ok=True)",
                context=self._ctx,
            )
            try:
                return E2BSession(self._sandbox, cwd, list(self._history))
            except ReplayFailed as e:
                raise AgentRLError(f"forking the e2b session failed: replaying its cells failed ({e})") from None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop_context()

    def __enter__(self) -> E2BSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class E2BSandbox:
    def __init__(
        self,
        limits: Limits | None = None,
        api_key: str | None = None,
        template: str | None = None,
        sdk=None,
        allow_internet: bool = False,
    ):
        """`sdk`: an already created e2b_code_interpreter.Sandbox (or a stand-in, in tests)."""
        self.limits = limits or Limits()
        self._closed = False
        self._n = 0
        self._lock = threading.Lock()
        _warn_unenforced(self.limits)
        self._sdk = sdk if sdk is not None else _create(api_key, template, allow_internet)
        self._extended = time.monotonic()
        self._finalizer = weakref.finalize(self, _kill, self._sdk)  # at close, garbage collection or exit
        self._preload = "".join(f"import {m}\n" for m in self.limits.preload)
        for rel, content in self.limits.files.items():
            self._sdk.files.write(f"/home/user/.agentrl-files/{rel}", content)

    def _in_use(self) -> None:
        """Push the VM's end LIFETIME seconds past now (at most once per half LIFETIME)."""
        if time.monotonic() - self._extended > LIFETIME / 2:
            self._extended = time.monotonic()
            try:
                self._sdk.set_timeout(LIFETIME)
            except Exception:
                pass  # the cell that follows reports a dead VM

    def _workdir(self) -> str:
        with self._lock:
            self._n += 1
            return f"/home/user/s{self._n}"

    def _new_context(self, cwd: str):
        setup = f"import os, shutil\nos.makedirs({cwd!r}, exist_ok=True)\n"
        if self.limits.files:
            setup += f"shutil.copytree('/home/user/.agentrl-files', {cwd!r}, dirs_exist_ok=True)\n"
        ctx = self._sdk.create_code_context(cwd="/home/user", language="python")
        ex = self._sdk.run_code(setup + f"os.chdir({cwd!r})\n" + self._preload, context=ctx)
        if ex.error is not None:
            raise AgentRLError(f"setting up an e2b session failed (files, preload): {ex.error.name}: {ex.error.value}")
        return ctx

    def session(self) -> E2BSession:
        if self._closed:
            raise AgentRLError("this sandbox is closed; open a new one with open_sandbox()")
        return E2BSession(self, self._workdir())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    def __enter__(self) -> E2BSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill(sdk) -> None:
    try:
        sdk.kill()
    except Exception:
        pass  # already gone (its lifetime ran out)


_warned = False


def _warn_unenforced(limits: Limits) -> None:
    """Once per process: the limits set away from their defaults that the e2b backend leaves to the VM."""
    global _warned
    default = Limits()
    unenforced = [f"{k}={getattr(limits, k)}" for k in UNENFORCED if getattr(limits, k) != getattr(default, k)]
    if unenforced and not _warned:
        _warned = True
        warnings.warn(
            f"the e2b backend does not enforce {', '.join(unenforced)}: the template's VM size bounds them",
            stacklevel=3,
        )


def _create(api_key: str | None, template: str | None, allow_internet: bool):
    api_key = api_key or os.environ.get("E2B_API_KEY")
    if not api_key:
        raise AgentRLError("the e2b sandbox backend needs an API key: set E2B_API_KEY or pass api_key=")
    try:
        from e2b_code_interpreter import Sandbox as Sdk
    except ImportError:
        raise AgentRLError("the e2b sandbox backend needs its SDK: pip install 'agentrl[e2b]'") from None
    opts = {"api_key": api_key, "timeout": LIFETIME, "allow_internet_access": allow_internet}
    if template or DEFAULT_TEMPLATE:
        opts["template"] = template or DEFAULT_TEMPLATE
    try:
        return Sdk.create(**opts)
    except Exception as e:
        raise AgentRLError(f"could not start an E2B sandbox ({e}); check E2B_API_KEY and the template") from None
