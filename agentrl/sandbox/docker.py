"""The docker backend: one warm, locked-down container per sandbox, running the same kernel.

For hosts where bubblewrap cannot run (no user namespaces) but a Docker engine answers. The
container has no network, a read-only root, tmpfs /home and /tmp, memory/CPU/pids limits, no
capabilities, ``no-new-privileges`` and a non-root user; the image is `sandboxes/Dockerfile`
(any image with a CPython >= 3.9 works: the kernel program is passed on the command line, never
copied into the image, so host and container always speak the same protocol).

Inside, `_kernel.py` runs as a zygote listening on a Unix socket. A session is a ``docker exec -i``
of the kernel in relay mode, which connects to that socket and copies bytes between it and its
stdin/stdout; the session process behind it is the same forking kernel as in the local backend
(timeouts roll back, fork copies the process). Sessions of one container share its uid, so the
container, not the session, is the isolation boundary here. Needs the `docker` SDK
(``pip install 'agentrl[docker]'``); it is imported only when this backend is used.

- Seccomp: the project's filter (`_seccomp.py`, the one bubblewrap loads for the local backend) is
  installed by the kernel itself, first thing in the zygote and in every relay (``--seccomp`` on
  their command lines), so sessions and cells inherit it. A filter a process installs is added to
  the ones it already runs under: Docker's default profile (an allowlist) stays, and ours denies on
  top of it. No profile goes through ``security_opt``, which would replace Docker's. Where the
  container is not x86_64 the kernel installs nothing (as the local backend does) and
  `DockerSandbox.seccomp` is False.
- The config (limits, preloads, inline ``files``) does not go on the command line, where one
  argument is capped at 128 KiB: after the container starts, the first connection to the zygote's
  socket (an exec relay) brings it, and the zygote answers once it has imported the preloads. Only
  the kernel program (~35 KB) and the filter (~1.5 KB) travel as arguments.
- When the host closes a session or gives up on it (a cell's kernel that stopped answering), it
  closes the exec's stream; the relay sees its stdin end and kills that session's kernel, its cell
  and whatever the cell started (`_kernel.kill_session`: the kernel's process session and the
  cells' process trees; forks, sessions of their own, live on), then exits. A kernel the host gives
  up on is also reaped by a detached exec of the kernel in reap mode, in case its relay is gone.
"""

from __future__ import annotations

import base64
import os
import platform
import socket
import struct
import threading
import uuid
import weakref
from typing import Any

from agentrl.errors import AgentRLError
from agentrl.sandbox import _kernel
from agentrl.sandbox.base import Limits
from agentrl.sandbox.local import _SANDBOX_ENV, _START_TIMEOUT_S, KERNEL_PATH, LocalSession

DEFAULT_IMAGE = "agentrl-sandbox:latest"
LABEL = "agentrl.sandbox"
OWNER_PID = "agentrl.owner_pid"
OWNER_HOST = "agentrl.owner_host"
_RUN = "/run/agentrl"  # tmpfs: the zygote's socket and the sockets of forks
_HOME = "/home"  # tmpfs: the sessions' working directories
_USER = "1000:1000"
_FORK_TIMEOUT_S = 60.0


class _ExecChannel:
    """A socket-like view of a `docker exec` stream: writes go to the process's stdin; reads
    return its stdout, with Docker's 8-byte multiplexing headers taken off."""

    def __init__(self, raw: socket.socket):
        self._raw = raw
        self._buf = bytearray()

    def _fill(self) -> bool:
        header = self._exact(8)
        if header is None:
            return False
        stream, size = header[0], struct.unpack(">I", header[4:])[0]
        payload = self._exact(size) if size else b""
        if payload is None:
            return False
        if stream == 1:  # stdout; stderr (2) is not part of the protocol
            self._buf += payload
        return True

    def _exact(self, n: int) -> bytes | None:
        chunks = []
        while n:
            data = self._raw.recv(n)
            if not data:
                return None
            chunks.append(data)
            n -= len(data)
        return b"".join(chunks)

    def recvmsg(self, n: int, _ancbufsize: int = 0):
        while not self._buf:
            if not self._fill():
                return b"", [], 0, None
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data, [], 0, None

    def sendall(self, data: bytes) -> None:
        self._raw.sendall(data)

    def sendmsg(self, buffers, ancdata=()):
        if ancdata:
            raise OSError("file descriptors cannot cross into a Docker container")
        data = b"".join(buffers)
        self._raw.sendall(data)
        return len(data)

    def settimeout(self, t: float | None) -> None:
        self._raw.settimeout(t)

    def shutdown(self, how: int) -> None:
        self._raw.shutdown(how)

    def close(self) -> None:
        """End the exec's stream, so that its relay sees stdin end. docker-py's response still holds
        the socket through a file object, so a bare close() would leave the connection open."""
        try:
            self._raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._raw.close()


class DockerSandbox:
    """A warm container; sessions are kernels reached through `docker exec` relays."""

    def __init__(
        self, limits: Limits | None = None, image: str = DEFAULT_IMAGE, client=None, runtime: str | None = None
    ):
        self.limits = limits or Limits()
        self._closed = False
        self._sessions: weakref.WeakSet[LocalSession] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._next_sid = 0
        self._dirty: set = set()
        self._source = KERNEL_PATH.read_text()
        self._filter = seccomp_args()
        self.seccomp = False
        """Whether the project's seccomp filter runs in the container, on top of Docker's default profile."""
        self._client = engine(client)
        remove_orphans(self._client)
        try:
            self._container = self._client.containers.create(
                image,
                self._kernel_argv("--listen", f"{_RUN}/zygote.sock"),
                **container_options(self.limits, uuid.uuid4().hex, runtime),
            )
        except Exception as e:
            raise AgentRLError(
                f"could not create the sandbox container from image {image!r} ({e}); build it with "
                "`docker build -t agentrl-sandbox -f sandboxes/Dockerfile .`"
            ) from None
        # removed on close, when garbage-collected, and at interpreter exit (a CLI run turns SIGTERM into Ctrl-C,
        # so that exit comes); after a SIGKILL, `agentrl sandbox gc` or the next sandbox's start removes it
        self._finalizer = weakref.finalize(self, _remove, self._container)
        try:
            self._container.start()
        except Exception as e:
            self._finalizer()
            raise AgentRLError(f"the sandbox container did not start ({e})") from None
        try:
            self._configure()
        except BaseException:
            self._finalizer()
            raise

    def _kernel_argv(self, *args: str) -> list[str]:
        """The kernel program in one of its modes, under the project's seccomp filter."""
        return ["python3", "-I", "-S", "-c", self._source, *args, *self._filter]

    def _kernel_config(self) -> dict:
        lim = self.limits
        return {
            "limits": lim.kernel_limits(),
            "preload": list(lim.preload),
            "env": dict(_SANDBOX_ENV),
            "files_inline": {
                rel: base64.b64encode(c.encode() if isinstance(c, str) else bytes(c)).decode()
                for rel, c in lim.files.items()
            },
            "limit_procs": False,  # the container's pids limit does this job
        }

    def _configure(self) -> None:
        """Hand the zygote its config through its socket (no size limit, unlike an argument) and
        wait until it has imported the preloads."""
        chan = self._exec_channel(f"{_RUN}/zygote.sock")
        why = "it exited"
        try:
            chan.settimeout(_START_TIMEOUT_S)
            _kernel.send(chan, {"op": "config", **self._kernel_config()})
            reply, _ = _kernel.recv(chan, 1 << 20)
        except (OSError, _kernel.ProtocolError) as e:
            reply, why = None, str(e) or type(e).__name__
        finally:
            chan.close()
        if reply is None:
            raise AgentRLError(f"the sandbox kernel did not start ({why}); {self._stderr_tail()}")
        if reply.get("error"):
            raise AgentRLError(f"the sandbox kernel did not start: {reply['error']}")
        if not reply.get("ready"):
            raise AgentRLError(
                "preloading modules in the sandbox failed: "
                + "; ".join(str(f) for f in reply.get("failed") or [])
                + " (is the package installed in the image?)"
            )
        self.seccomp = bool(reply.get("seccomp"))

    # -- what LocalSession needs from its sandbox ---------------------------------------------
    def _exec_channel(self, path: str) -> _ExecChannel:
        api = self._client.api
        try:
            exec_id = api.exec_create(
                self._container.id,
                self._kernel_argv("--attach", path),
                stdin=True,
                stdout=True,
                stderr=False,
                user=_USER,
            )
            sock = api.exec_start(exec_id, socket=True)
        except Exception as e:  # the SDK raises several types for "the container or engine is gone"
            raise AgentRLError(
                f"the sandbox container does not answer ({e}); open a new one with open_sandbox()"
            ) from None
        return _ExecChannel(getattr(sock, "_sock", sock))

    def _open_channel(self, uid, workdir: str, copy_files: bool) -> _ExecChannel:
        if self._closed:
            raise AgentRLError("this sandbox is closed; open a new one with open_sandbox()")
        chan = self._exec_channel(f"{_RUN}/zygote.sock")
        try:
            _kernel.send(chan, {"op": "new", "uid": None, "workdir": workdir, "copy_files": copy_files})
        except OSError as e:
            chan.close()
            raise AgentRLError(f"the sandbox is gone ({e}); open a new one with open_sandbox()") from None
        return chan

    def _sid(self) -> int:
        with self._lock:
            self._next_sid += 1
            return self._next_sid

    def session(self) -> LocalSession:
        workdir = f"{_HOME}/s{self._sid()}"
        sess = LocalSession(self, self._open_channel(None, workdir, True), None, workdir)
        self._sessions.add(sess)
        return sess

    def _fork(self, sess: LocalSession) -> LocalSession:
        sid = self._sid()
        workdir, path = f"{_HOME}/s{sid}", f"{_RUN}/f{sid}.sock"
        chan = sess._chan
        try:
            chan.settimeout(_FORK_TIMEOUT_S)
            _kernel.send(chan, {"op": "fork", "workdir": workdir, "listen": path})
            reply, _ = _kernel.recv(chan, sess._max_frame)
            why = "its kernel did not answer" if reply is None else None
        except (OSError, _kernel.ProtocolError) as e:
            reply, why = None, (f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        if reply is None:
            # the channel is gone or out of step (a late reply would answer the next cell): the
            # kernel is killed, and the session's next run starts a fresh one
            sess._drop(kill=True)
            raise AgentRLError(
                f"forking the sandbox session failed: {why}; its state is lost and its next run starts a fresh kernel"
            )
        if not reply.get("ok"):
            raise AgentRLError(f"forking the sandbox session failed: {reply.get('error')} (raise max_procs?)")
        child = LocalSession(self, self._exec_channel(path), None, workdir)
        self._sessions.add(child)
        return child

    def _release_uid(self, uid) -> None:
        pass  # one uid for the whole container

    def _reap(self, uid, sid=None) -> None:
        """Kill a session's kernel with its cells and what they started (`sid`: the pid of its first
        kernel process, which leads its process session) by a detached exec of the kernel in reap
        mode. The session's relay does the same when its stream closes; this covers a relay that
        is stuck or was killed. Without `sid` (a whole family) nothing is done: the container's
        sessions share one uid, and its pids limit bounds what is left until it goes."""
        if sid is None or self._closed:
            return
        api = self._client.api
        try:
            exec_id = api.exec_create(
                self._container.id,
                self._kernel_argv("--reap", str(int(sid))),
                stdout=False,
                stderr=False,
                user=_USER,
            )
            api.exec_start(exec_id, detach=True)
        except Exception:
            pass  # the container is gone, and the kernel with it

    def _stderr_tail(self) -> str:
        try:
            return self._container.logs(tail=20).decode("utf-8", "replace").strip()
        except Exception:
            return ""

    # -- close ------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sess in list(self._sessions):
            sess._closed = True
            if sess._chan is not None:
                try:
                    sess._chan.close()
                except OSError:
                    pass
        self._finalizer()

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def engine(client=None):
    """A Docker client whose engine answers (`client`, or one from the environment), or a clear error."""
    try:
        import docker
    except ImportError:
        raise AgentRLError("the docker sandbox backend needs the Docker SDK: pip install 'agentrl[docker]'") from None
    try:
        client = client or docker.from_env()
        client.ping()
    except Exception as e:  # the SDK raises several types for "no engine"
        raise AgentRLError(f"no Docker engine answers ({e}); start Docker or use backend='local'") from None
    return client


def container_options(limits: Limits, sandbox_id: str, runtime: str | None = None) -> dict[str, Any]:
    """`containers.create` keywords: locked down, bounded, and labelled with its owner so orphans can be found."""
    from docker.types import LogConfig, Ulimit

    disk = f"size={limits.disk_mb}m"
    return {
        "name": f"agentrl-sandbox-{sandbox_id[:12]}",
        "labels": {LABEL: sandbox_id, OWNER_PID: str(os.getpid()), OWNER_HOST: socket.gethostname()},
        "auto_remove": True,  # a container that stops (its zygote killed) is removed by the engine
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": disk, _HOME: disk + ",mode=1777", _RUN: "size=1m,mode=1777"},
        "mem_limit": f"{limits.memory_mb}m",
        "memswap_limit": f"{limits.memory_mb}m",
        "nano_cpus": 1_000_000_000,
        "pids_limit": limits.max_procs * 4,
        "cap_drop": ["ALL"],
        # no seccomp profile here: one would replace Docker's default; the kernel adds the project's filter on top
        "security_opt": ["no-new-privileges"],
        "ulimits": [Ulimit(name="core", soft=0, hard=0)],
        # a cell can reach the zygote's stdout through /proc: the log it writes is capped, not the host's disk
        "log_config": LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
        "user": _USER,
        "working_dir": "/home",
        **({"runtime": runtime} if runtime else {}),
    }


def seccomp_args() -> list[str]:
    """``--seccomp ARCH:BASE64`` for the kernel's command line (the project's filter), or nothing
    where `_seccomp` describes no filter for this machine."""
    from agentrl.sandbox._seccomp import program

    prog = program()
    if prog is None:
        return []
    return ["--seccomp", f"{platform.machine()}:{base64.b64encode(prog).decode()}"]


def remove_orphans(client) -> list[str]:
    """Remove the sandbox containers of this host whose owner process is gone; their names."""
    removed = []
    host = socket.gethostname()
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        labels = container.labels or {}
        if labels.get(OWNER_HOST) == host and not _alive(int(labels.get(OWNER_PID) or 0)):
            _remove(container)
            removed.append(container.name)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(container) -> None:
    try:
        container.remove(force=True)
    except Exception:
        pass  # already gone (auto_remove) or the engine went away
