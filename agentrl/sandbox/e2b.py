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

Limits: ``timeout`` is enforced by E2B; memory, disk and processes are the template's. Needs
``pip install 'agentrl[e2b]'`` and E2B_API_KEY (or ``api_key=``); imported only when used.
"""

from __future__ import annotations

import os
import threading
import time

from agentrl.errors import AgentRLError
from agentrl.sandbox.base import ExecError, ExecResult, Limits

DEFAULT_TEMPLATE = None  # E2B's code-interpreter template; or the one built from sandboxes/e2b/


class E2BSession:
    def __init__(self, sandbox: E2BSandbox, cwd: str, history: list[str] | None = None):
        self._sandbox = sandbox
        self.workdir = cwd
        self._history: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        self._ctx = sandbox._new_context(cwd)
        for code in history or []:
            self._replay(code)

    def _replay(self, code: str) -> None:
        self._sandbox._sdk.run_code(code, context=self._ctx, timeout=self._sandbox.limits.timeout)
        self._history.append(code)

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        timeout = self._sandbox.limits.timeout if timeout is None else float(timeout)
        with self._lock:
            if self._closed:
                raise AgentRLError("this sandbox session is closed; open a new one with sandbox.session()")
            t0 = time.perf_counter()
            try:
                ex = self._sandbox._sdk.run_code(code, context=self._ctx, timeout=timeout)
            except Exception as e:
                timed_out = "timeout" in type(e).__name__.lower()
                self._rebuild()
                name = "TimeoutError" if timed_out else "SandboxCrash"
                return ExecResult(
                    error=ExecError(name, f"{e}; state rolled back by replay"),
                    timed_out=timed_out,
                    duration_s=time.perf_counter() - t0,
                )
            return self._result(code, ex, time.perf_counter() - t0)

    def _result(self, code: str, ex, duration: float) -> ExecResult:
        limit = self._sandbox.limits.max_output_bytes
        stdout, stderr = "".join(ex.logs.stdout), "".join(ex.logs.stderr)
        truncated = len(stdout) + len(stderr) > limit
        stdout, stderr = stdout[:limit], stderr[: max(0, limit - len(stdout))]
        main = [r for r in ex.results if getattr(r, "is_main_result", False)]
        result = main[0].text if main else None
        error = None
        if ex.error is not None:
            error = ExecError(ex.error.name, ex.error.value, ex.error.traceback)
            if error.name in ("SystemExit", "MemoryError"):
                self._rebuild()  # as in the local backend, these roll the session back
        if error is None or error.name not in ("SystemExit", "MemoryError"):
            self._history.append(code)
        return ExecResult(stdout, stderr, result, error, False, duration, truncated)

    def _rebuild(self) -> None:
        """Replace the context by a replay of the successful cells (state from before the cell)."""
        try:
            self._sandbox._sdk.remove_code_context(self._ctx)
        except Exception:
            pass
        history, self._history = self._history, []
        self._ctx = self._sandbox._new_context(self.workdir)
        for code in history:
            self._replay(code)

    def fork(self) -> E2BSession:
        with self._lock:
            cwd = self._sandbox._workdir()
            self._sandbox._sdk.run_code(
                f"import shutil; shutil.copytree({self.workdir!r}, {cwd!r}, dirs_exist_ok=True)",
                context=self._ctx,
            )
            return E2BSession(self._sandbox, cwd, list(self._history))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._sandbox._sdk.remove_code_context(self._ctx)
            except Exception:
                pass

    def __enter__(self) -> E2BSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class E2BSandbox:
    def __init__(self, limits: Limits | None = None, api_key: str | None = None, template: str | None = None, sdk=None):
        """`sdk`: an already created e2b_code_interpreter.Sandbox (or a stand-in, in tests)."""
        self.limits = limits or Limits()
        self._closed = False
        self._n = 0
        self._lock = threading.Lock()
        self._sdk = sdk if sdk is not None else _create(api_key, template)
        self._preload = "".join(f"import {m}\n" for m in self.limits.preload)
        for rel, content in self.limits.files.items():
            self._sdk.files.write(f"/home/user/.agentrl-files/{rel}", content)

    def _workdir(self) -> str:
        with self._lock:
            self._n += 1
            return f"/home/user/s{self._n}"

    def _new_context(self, cwd: str):
        setup = f"import os, shutil\nos.makedirs({cwd!r}, exist_ok=True)\n"
        if self.limits.files:
            setup += f"shutil.copytree('/home/user/.agentrl-files', {cwd!r}, dirs_exist_ok=True)\n"
        ctx = self._sdk.create_code_context(cwd="/home/user", language="python")
        self._sdk.run_code(setup + f"os.chdir({cwd!r})\n" + self._preload, context=ctx)
        return ctx

    def session(self) -> E2BSession:
        if self._closed:
            raise AgentRLError("this sandbox is closed; open a new one with open_sandbox()")
        return E2BSession(self, self._workdir())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sdk.kill()
        except Exception:
            pass

    def __enter__(self) -> E2BSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _create(api_key: str | None, template: str | None):
    api_key = api_key or os.environ.get("E2B_API_KEY")
    if not api_key:
        raise AgentRLError("the e2b sandbox backend needs an API key: set E2B_API_KEY or pass api_key=")
    try:
        from e2b_code_interpreter import Sandbox as Sdk
    except ImportError:
        raise AgentRLError("the e2b sandbox backend needs its SDK: pip install 'agentrl[e2b]'") from None
    opts = {"api_key": api_key, "timeout": 3600}
    if template or DEFAULT_TEMPLATE:
        opts["template"] = template or DEFAULT_TEMPLATE
    create = getattr(Sdk, "create", None) or Sdk  # v2 has Sandbox.create(); v1 the constructor
    try:
        return create(**opts)
    except Exception as e:
        raise AgentRLError(f"could not start an E2B sandbox ({e}); check E2B_API_KEY and the template") from None
