"""Sandboxed, stateful Python kernels for model-written code.

    from agentrl.sandbox import open_sandbox
    with open_sandbox(timeout=5, preload=["math"]) as sb:
        s = sb.session()
        s.run("x = 41\\nx + 1").result      # '42'
        s2 = s.fork()                       # independent copy of s's state

Backends: "local" (default; bubblewrap namespaces, see `local.py`), "docker" and "e2b". Code here
never runs model-written code itself; the backends do, behind the `Sandbox`/`Session` protocol.
"""

from __future__ import annotations

from agentrl.errors import AgentRLError
from agentrl.sandbox.base import ExecError, ExecResult, Limits, Sandbox, Session

__all__ = ["ExecError", "ExecResult", "Limits", "Sandbox", "Session", "open_sandbox"]


def open_sandbox(backend: str = "local", **options) -> Sandbox:
    """Start a sandbox; use it as a context manager or call `.close()`.

    Limits (all optional): timeout (per-cell seconds, default 10), memory_mb, cpu_s,
    max_output_bytes, file_size_mb, disk_mb, max_procs, max_open_files, preload (modules imported
    once at start), files ({relative path: bytes | str} copied into each new session's workdir).
    Backend options: local: isolation="bwrap" | "none" (UNISOLATED, loud warning),
    site_packages=True; docker: image=..., runtime=... (e.g. "runsc"); e2b: api_key=..., template=...,
    allow_internet=False.
    """
    from agentrl.sandbox.local import limits_from

    backend_opts = {k: options.pop(k) for k in list(options) if k in _BACKEND_OPTIONS.get(backend, ())}
    limits = limits_from(**options)
    if backend == "local":
        from agentrl.sandbox.local import LocalSandbox

        return LocalSandbox(limits, **backend_opts)
    if backend == "docker":
        from agentrl.sandbox.docker import DockerSandbox

        return DockerSandbox(limits, **backend_opts)
    if backend == "e2b":
        from agentrl.sandbox.e2b import E2BSandbox

        return E2BSandbox(limits, **backend_opts)
    raise AgentRLError(f"unknown sandbox backend {backend!r}: use 'local', 'docker' or 'e2b'")


_BACKEND_OPTIONS = {
    "local": ("isolation", "site_packages"),
    "docker": ("image", "client", "runtime"),
    "e2b": ("api_key", "template", "allow_internet"),
}
