"""The local sandbox backend: bubblewrap namespaces around a pre-warmed, forking Python kernel.

This is the security boundary of agentrl: model-written code runs here. It must never run that code
in, or fork from, the trainer process (which holds torch and the weights), never show it the host's
files, environment or network, and never let it outlive `close()`.

Design, and why:

- One bubblewrap container per `Sandbox` (``--unshare-all``: new user, pid, net, ipc, uts and cgroup
  namespaces; ``--clearenv``; ``--new-session``; ``--die-with-parent``). Only what the interpreter
  needs is mounted, read-only: /usr, the Python installation, the host environment's site-packages
  (third-party code, so cells can ``import numpy``), a short list of /etc files and the kernel
  program. /work, /root, the host's /home and the rest of the host are absent; /tmp, /home (the
  sessions' working directories) and /dev/shm are private size-limited tmpfs. A seccomp filter
  (`_seccomp.py`) denies the syscalls escapes usually start from (ptrace, mount, new namespaces,
  bpf, keyctl, io_uring, ...). See sandboxes/README.md for the full profile.
- Inside runs a light zygote (`_kernel.py` under ``python -I -S``: no site, no environment) that
  imports ``preload`` once. A session is a process forked from it (2-4 ms here), a cell a process
  forked from the session: on success the cell's process becomes the session (state moves on); on
  timeout, crash, ``sys.exit`` or MemoryError it is killed and the session keeps the state from
  before the cell, so the kernel answers at once. ``fork()`` forks the session process and copies
  its working directory (3-4 ms). Nothing is ever forked from the host process, and a trivial cell
  costs ~3 ms against 12-40 ms for a fresh ``python -c``. Files are not rolled back.
- Each session family (a session and its forks) runs as its own uid, mapped to an unused host uid
  (when the host runs as root, which may write a uid map with many ids). So RLIMIT_NPROC binds (it
  never binds root, and under a user namespace it counts per namespace and uid), a fork bomb stays
  within ``max_procs``, one session cannot signal or read another (``kill -9 -1`` reaches only its
  own family, and seccomp refuses it anyway), and closing a family kills every process of its uid.
  The zygote is the namespace's uid 0 with only CAP_SETUID/CAP_SETGID, which it needs to hand out
  those uids; sessions have no capabilities and ``no_new_privs``. A cell that kills its own kernel
  (``os.kill(os.getppid(), 9)``) loses that session's state: the next run starts a fresh kernel.
- Limits are rlimits set in each session (address space, CPU, file size, open files, processes),
  the tmpfs sizes, and a wall clock enforced by the session process (it stops, then kills, the
  cell's whole process tree; the cell's process is a child subreaper, so nothing it started
  escapes, and processes a cell started never outlive it). The host adds a last-resort clock: a
  kernel that does not answer in time is killed and restarted fresh.
- Host and sandbox talk over Unix socket pairs the host creates (the container has no network): a
  control socket to the zygote, one channel per session passed in with SCM_RIGHTS. Frames are
  length-prefixed JSON; the host bounds their size and treats their content as untrusted.

`Session.run` blocks in socket calls, which release the GIL, so a thread pool drives many sessions
at once; each session has its own lock and channel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from agentrl.errors import AgentRLError
from agentrl.sandbox import _kernel
from agentrl.sandbox.base import ExecError, ExecResult, Limits

KERNEL_PATH = Path(_kernel.__file__).resolve()
_IN_KERNEL = "/opt/agentrl/kernel.py"
_IN_FILES = "/opt/agentrl/files"
_NS_UID0 = 1000  # first uid handed to session families inside the container
_UIDS = 4096  # session-family uids per container
_HOST_UID_BASE = 1_000_000  # host uids they map to (far above real users)
_ETC = (
    "ld.so.cache ld.so.conf ld.so.conf.d localtime timezone nsswitch.conf host.conf alternatives "
    "mime.types ssl/certs ca-certificates fonts os-release debian_version protocols services magic"
).split()
_GRACE_S = 2.0
_UNCLEAN = ("SandboxCrash", "CPUTimeExceeded", "TimeoutError")
_START_TIMEOUT_S = 120.0
_SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "USER": "sandbox",
    "TMPDIR": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}

# bwrap is started from one long-lived thread: --die-with-parent uses PR_SET_PDEATHSIG, which fires
# when the *thread* that spawned it exits, and callers often open sandboxes from worker threads.
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()
_sandbox_ids = iter(range(1 << 62))


def _spawn(argv: list[str], **kw) -> subprocess.Popen:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(1, thread_name_prefix="agentrl-sandbox-spawn")
    return _spawner.submit(subprocess.Popen, argv, **kw).result()


def _site_dirs() -> list[str]:
    """The host environment's package directories, so cells can import what the host has."""
    dirs = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    dirs |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return sorted(d for d in dirs if os.path.isdir(d))


def _python() -> tuple[str, str]:
    """(real interpreter path, installation prefix to mount)."""
    exe = os.path.realpath(sys.executable)
    return exe, os.path.realpath(sys.base_prefix)


def check_bwrap() -> str:
    """Path of bwrap, or an AgentRLError saying how to install it."""
    path = shutil.which("bwrap")
    if path is None:
        raise AgentRLError(
            "the local sandbox needs bubblewrap, which is not installed: `apt-get install bubblewrap` "
            "(or dnf/apk install bubblewrap); or open_sandbox(isolation='none') to run code UNISOLATED"
        )
    return path


def _userns_hint(stderr: str) -> str:
    return (
        f"bubblewrap could not create the sandbox: {stderr.strip() or 'no message'}. If user namespaces "
        "are refused, allow them: `sysctl -w kernel.unprivileged_userns_clone=1` and "
        "`sysctl -w user.max_user_namespaces=15000` (on Ubuntu 24.04+ also "
        "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`); inside Docker run with "
        "--security-opt seccomp=unconfined or use backend='docker'"
    )


def _to_result(reply: dict, duration: float) -> ExecResult:
    """An ExecResult from a kernel's reply. The reply is untrusted (a cell can forge its status):
    coerce every field, never raise."""
    err = reply.get("error")
    error = None
    if err:
        parts = [str(x) for x in err][:3] if isinstance(err, list | tuple) else ["SandboxCrash", str(err)]
        parts += [""] * (3 - len(parts))
        error = ExecError(*parts)
    result = reply.get("result")
    return ExecResult(
        stdout=str(reply.get("stdout", "")),
        stderr=str(reply.get("stderr", "")),
        result=None if result is None else str(result),
        error=error,
        timed_out=bool(reply.get("timed_out", False)),
        duration_s=duration,
        truncated=bool(reply.get("truncated", False)),
    )


def _lost(message: str, duration: float, timed_out: bool = False) -> ExecResult:
    return ExecResult(error=ExecError("SandboxCrash", message), timed_out=timed_out, duration_s=duration)


class LocalSession:
    """A stateful Python kernel in a `LocalSandbox` (see the module docstring)."""

    def __init__(self, sandbox: LocalSandbox, chan: socket.socket, uid: int | None, workdir: str):
        self._sandbox = sandbox
        self._box: list[socket.socket | None] = [chan]  # shared with the finalizer
        self.uid = uid
        self.workdir = workdir
        """The session's working directory inside the sandbox (its cwd at start)."""
        self._lock = threading.Lock()
        self._closed = False
        self._max_frame = 48 * sandbox.limits.max_output_bytes + (1 << 20)
        hello = self._hello(chan)
        self.pid = hello.get("pid")
        # a session dropped without close() still ends its kernel and frees its uid
        self._finalizer = weakref.finalize(self, _forget_session, weakref.ref(sandbox), self._box, uid)

    @property
    def _chan(self) -> socket.socket | None:
        return self._box[0]

    @_chan.setter
    def _chan(self, chan: socket.socket | None) -> None:
        self._box[0] = chan

    def _hello(self, chan: socket.socket) -> dict:
        chan.settimeout(_START_TIMEOUT_S)
        try:
            msg, _ = _kernel.recv(chan, self._max_frame)
        except (OSError, _kernel.ProtocolError) as e:
            msg = None
            why = str(e)
        else:
            why = "it exited"
        if not msg or not msg.get("ready"):
            chan.close()
            raise AgentRLError(f"a sandbox session failed to start ({why}); {self._sandbox._stderr_tail()}")
        return msg

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Run one cell; never raises for anything the cell does (see ExecResult)."""
        timeout = self._sandbox.limits.timeout if timeout is None else float(timeout)
        with self._lock:
            if self._closed:
                raise AgentRLError("this sandbox session is closed; open a new one with sandbox.session()")
            t0 = time.perf_counter()
            if self._chan is None:
                self._restart()
            chan = self._chan
            try:
                _kernel.send(chan, {"op": "run", "code": code, "timeout": timeout})
                chan.settimeout(timeout + _GRACE_S + 0.1 * timeout)
                reply, _ = _kernel.recv(chan, self._max_frame)
            except TimeoutError:
                self._drop(kill=True)
                return _lost(
                    "the kernel stopped answering (the cell stopped or killed it); its state is lost and "
                    "the next run starts a fresh kernel",
                    time.perf_counter() - t0,
                    timed_out=True,
                )
            except (OSError, _kernel.ProtocolError):
                reply = None
            except BaseException:  # e.g. KeyboardInterrupt mid-frame: the channel is out of step
                self._drop(kill=True)
                raise
            if reply is None and self._sandbox._closed:
                self._drop(kill=False)
                return _lost("the sandbox was closed while this cell ran", time.perf_counter() - t0)
            if reply is None:
                self._drop(kill=True)
                return _lost(
                    "the cell killed its kernel process; the session's state is lost and the next run "
                    "starts a fresh kernel (files in the working directory are kept)",
                    time.perf_counter() - t0,
                )
            result = _to_result(reply, time.perf_counter() - t0)
            if result.timed_out or (result.error is not None and result.error.name in _UNCLEAN):
                self._sandbox._dirty.add(self.uid)  # leftovers possible: reap the family at its end
            return result

    def fork(self) -> LocalSession:
        """An independent copy of this session's state (variables and working directory) right now."""
        with self._lock:
            if self._closed:
                raise AgentRLError("cannot fork a closed sandbox session")
            if self._chan is None:
                self._restart()
            return self._sandbox._fork(self)

    def close(self) -> None:
        """End the kernel (its processes, and the family's when it is the last); harmless twice."""
        with self._lock:
            self._closed = True
            self._sandbox._sessions.discard(self)
            self._finalizer()

    def _drop(self, kill: bool) -> None:
        chan, self._chan = self._chan, None
        if chan is not None:
            if not kill:
                try:
                    _kernel.send(chan, {"op": "close"})
                except OSError:
                    pass
            chan.close()
        if kill:  # the kernel and its cell may be stuck or half dead: make sure they are gone
            self._sandbox._dirty.add(self.uid)
            self._sandbox._reap(self.uid, self.pid)

    def _restart(self) -> None:
        self._chan = self._sandbox._open_channel(self.uid, self.workdir, copy_files=False)
        self.pid = self._hello(self._chan).get("pid")

    def __enter__(self) -> LocalSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalSandbox:
    """One bubblewrap container hosting a zygote; `session()` forks kernels from it."""

    def __init__(self, limits: Limits | None = None, isolation: str = "bwrap", site_packages: bool = True):
        if isolation not in ("bwrap", "none"):
            raise AgentRLError(f"unknown isolation {isolation!r}: use 'bwrap' (default) or 'none'")
        self.limits = limits or Limits()
        self.isolation = isolation
        self._closed = False
        self._ctl_lock = threading.Lock()
        self._families: dict[int | None, int] = {}
        self._dirty: set[int | None] = set()  # families whose cells crashed or timed out
        self._sessions: weakref.WeakSet[LocalSession] = weakref.WeakSet()
        self._next_sid = 0
        self._next_uid = 0
        self._id = next(_sandbox_ids)
        self._host_uid_base = _HOST_UID_BASE + (self._id % 200) * _UIDS
        self.pid_namespace: int | None = None
        """Inode of the container's pid namespace (as in /proc/PID/ns/pid on the host)."""
        self._tmp = tempfile.mkdtemp(prefix="agentrl-sandbox-")
        self._stderr = tempfile.TemporaryFile(dir=self._tmp)
        self._proc: subprocess.Popen | None = None
        self._ctl: socket.socket | None = None
        self._finalizer = weakref.finalize(self, _cleanup, None, None, self._tmp)
        try:
            self._start(site_packages)
        except BaseException:
            self.close()
            raise

    # -- start ------------------------------------------------------------------------------
    def _start(self, site_packages: bool) -> None:
        lim = self.limits
        files_dir = self._write_files()
        exe, prefix = _python()
        sites = _site_dirs() if site_packages else []
        host_ctl, box_ctl = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._ctl = host_ctl
        self._multi_uid = self.isolation == "bwrap" and os.geteuid() == 0
        if self.isolation == "none":
            warnings.warn(
                "agentrl sandbox isolation='none': model-written code runs UNISOLATED on this machine "
                "(only rlimits apply); never use it for untrusted code",
                RuntimeWarning,
                stacklevel=3,
            )
            print(
                "WARNING: agentrl sandbox running with isolation='none' (no namespaces, no seccomp)",
                file=sys.stderr,
            )
            self._home = os.path.join(self._tmp, "home")
            os.mkdir(self._home)
            os.chmod(self._home, 0o1777)
            os.chmod(self._tmp, 0o755)
            argv = [exe, "-I", "-S", "-B", str(KERNEL_PATH), str(box_ctl.fileno())]
            kernel_files = files_dir
            self._proc = _spawn(
                argv,
                pass_fds=(box_ctl.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                env=dict(_SANDBOX_ENV),
                cwd=self._tmp,
                start_new_session=True,
            )
            box_ctl.close()
        else:
            self._home = "/home"
            kernel_files = _IN_FILES if files_dir else None
            self._proc = self._start_bwrap(exe, prefix, sites, files_dir, box_ctl)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _cleanup, self._proc, host_ctl, self._tmp)
        cfg = {
            "limits": lim.kernel_limits(),
            "preload": list(lim.preload),
            "sys_path": sites,
            "env": dict(_SANDBOX_ENV),
            "files_dir": kernel_files,
            # RLIMIT_NPROC only makes sense per uid; in none mode as a non-root user it would count
            # every process of that user on the host.
            "limit_procs": self._multi_uid or (self.isolation == "none" and os.geteuid() == 0),
        }
        _kernel.send(host_ctl, cfg)
        host_ctl.settimeout(_START_TIMEOUT_S)
        try:
            ready, _ = _kernel.recv(host_ctl)
        except (OSError, _kernel.ProtocolError):
            ready = None
        if ready is None:
            tail = self._stderr_tail()
            if self.isolation == "bwrap":
                raise AgentRLError(_userns_hint(tail))
            raise AgentRLError(f"the sandbox kernel failed to start: {tail}")
        if not ready.get("ready"):
            raise AgentRLError(
                "preloading modules in the sandbox failed: "
                + "; ".join(ready.get("failed", []))
                + " (is the package installed in this environment?)"
            )
        host_ctl.settimeout(None)

    def _write_files(self) -> str | None:
        if not self.limits.files:
            return None
        root = Path(self._tmp, "files")
        for rel, content in self.limits.files.items():
            path = (root / rel).resolve()
            if not path.is_relative_to(root.resolve()):
                raise AgentRLError(f"sandbox file {rel!r} must be a relative path inside the workdir")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else bytes(content))
        for dirpath, _, filenames in os.walk(root):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        os.chmod(self._tmp, 0o755)
        return str(root)

    def _start_bwrap(self, exe, prefix, sites, files_dir, box_ctl) -> subprocess.Popen:
        bwrap = check_bwrap()
        lim = self.limits
        etc = Path(self._tmp, "etc")
        etc.mkdir()
        (etc / "passwd").write_text(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            "sandbox:x:1000:1000:sandbox:/home:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (etc / "group").write_text("root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n")
        (etc / "hostname").write_text("sandbox\n")
        (etc / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost\n")
        for p in etc.iterdir():
            p.chmod(0o644)
        os.chmod(self._tmp, 0o755)
        disk = str(lim.disk_mb << 20)
        argv = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
        argv += ["--clearenv", "--hostname", "sandbox", "--cap-drop", "ALL"]
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe() if self._multi_uid else (None, None)
        pass_fds = [box_ctl.fileno(), info_w]
        argv += ["--info-fd", str(info_w)]
        if self._multi_uid:
            argv += ["--userns-block-fd", str(block_r), "--uid", "0", "--gid", "0"]
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
            pass_fds.append(block_r)
        else:
            argv += ["--uid", str(_NS_UID0), "--gid", str(_NS_UID0)]
        argv += ["--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = Path("/", top)
            if path.is_symlink():
                argv += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                argv += ["--ro-bind", str(path), str(path)]
        mounted, made = ["/usr/"], set()
        for src in [prefix, *sites]:
            if not any((src + "/").startswith(m) for m in mounted):
                # parents bwrap would create are mode 0700, closed to the sessions' uids
                for parent in reversed(Path(src).parents[:-1]):
                    if str(parent) not in made:
                        argv += ["--perms", "0755", "--dir", str(parent)]
                        made.add(str(parent))
                argv += ["--ro-bind", src, src]
                mounted.append(src + "/")
        argv += ["--perms", "0755", "--dir", "/etc"]
        for name in _ETC:
            if "/" in name:  # parents bwrap would create are 0700: make them readable
                argv += ["--perms", "0755", "--dir", f"/etc/{os.path.dirname(name)}"]
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for p in sorted(etc.iterdir()):
            argv += ["--ro-bind", str(p), f"/etc/{p.name}"]
        argv += ["--perms", "0755", "--dir", "/opt", "--perms", "0755", "--dir", "/opt/agentrl"]
        argv += ["--ro-bind", str(KERNEL_PATH), _IN_KERNEL]
        if files_dir:
            argv += ["--ro-bind", files_dir, _IN_FILES]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        for path in ("/tmp", "/home", "/dev/shm"):
            argv += ["--size", disk, "--perms", "1777", "--tmpfs", path]
        argv += ["--chdir", "/"]
        seccomp_fd = self._seccomp_fd()
        if seccomp_fd is not None:
            argv += ["--seccomp", str(seccomp_fd)]
            pass_fds.append(seccomp_fd)
        argv += [exe, "-I", "-S", "-B", _IN_KERNEL, str(box_ctl.fileno())]
        try:
            proc = _spawn(
                argv,
                pass_fds=tuple(pass_fds),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                start_new_session=True,
            )
        finally:
            box_ctl.close()
            os.close(info_w)
            if block_r is not None:
                os.close(block_r)
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        try:
            info = self._read_info(info_r, proc)
            self.pid_namespace = int(info["pid-namespace"])
            if self._multi_uid:
                child = info["child-pid"]
                for kind in ("uid_map", "gid_map"):
                    with open(f"/proc/{child}/{kind}", "w") as f:
                        f.write(f"0 0 1\n{_NS_UID0} {self._host_uid_base} {_UIDS}\n")
        except (OSError, KeyError, ValueError) as e:
            proc.kill()
            proc.wait()
            raise AgentRLError(_userns_hint(f"{e}; {self._stderr_tail()}")) from None
        finally:
            os.close(info_r)
            if block_w is not None:
                os.write(block_w, b"1")
                os.close(block_w)
        return proc

    @staticmethod
    def _read_info(fd: int, proc: subprocess.Popen) -> dict:
        data = b""
        deadline = time.monotonic() + 30
        while b"}" not in data:
            if time.monotonic() > deadline:
                raise OSError("bwrap did not report its sandbox")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise OSError("bwrap exited before creating the sandbox")
            data += chunk
        return json.loads(data[: data.index(b"}") + 1])

    def _seccomp_fd(self) -> int | None:
        try:
            from agentrl.sandbox._seccomp import program_fd
        except ImportError:
            return None
        return program_fd()

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    # -- sessions ---------------------------------------------------------------------------
    def session(self) -> LocalSession:
        """A new session: a fresh kernel with its own uid and working directory."""
        with self._ctl_lock:
            uid = self._alloc_uid()
        try:
            sid = self._sid()
            workdir = f"{self._home}/s{sid}"
            chan = self._open_channel(uid, workdir, copy_files=True)
            sess = LocalSession(self, chan, uid, workdir)
        except BaseException:
            self._release_uid(uid)
            raise
        self._sessions.add(sess)
        return sess

    def host_uid(self, uid: int | None) -> int | None:
        """The host uid a session family's uid maps to (None when families share one uid)."""
        if uid is None or not self._multi_uid:
            return None
        return self._host_uid_base + uid - _NS_UID0

    def _sid(self) -> int:
        with self._ctl_lock:
            self._next_sid += 1
            return self._next_sid

    def _alloc_uid(self) -> int | None:
        if self._closed:
            raise AgentRLError("this sandbox is closed; open a new one with open_sandbox()")
        if not self._multi_uid:
            uid = 65534 if (self.isolation == "none" and os.geteuid() == 0) else None
            self._families[uid] = self._families.get(uid, 0) + 1
            return uid
        for _ in range(_UIDS):
            uid = _NS_UID0 + self._next_uid % _UIDS
            self._next_uid += 1
            if uid not in self._families:
                self._families[uid] = 1
                return uid
        raise AgentRLError(f"a sandbox holds at most {_UIDS} session families; close some sessions")

    def _release_uid(self, uid: int | None) -> None:
        with self._ctl_lock:
            n = self._families.get(uid, 0) - 1
            if n > 0:
                self._families[uid] = n
                return
            self._families.pop(uid, None)
            if uid not in self._dirty:
                return  # every cell ended cleanly and the kernels killed their strays
            self._dirty.discard(uid)
        self._reap(uid)

    def _open_channel(self, uid: int | None, workdir: str, copy_files: bool) -> socket.socket:
        host, box = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._ctl_lock:
                if self._closed or self._ctl is None:
                    raise AgentRLError("this sandbox is closed; open a new one with open_sandbox()")
                msg = {"op": "new", "uid": uid, "workdir": workdir, "copy_files": copy_files}
                _kernel.send(self._ctl, msg, (box.fileno(),))
        except OSError as e:
            host.close()
            raise AgentRLError(f"the sandbox is gone ({e}); open a new one with open_sandbox()") from None
        finally:
            box.close()
        return host

    def _fork(self, sess: LocalSession) -> LocalSession:
        host, box = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        workdir = f"{self._home}/s{self._sid()}"
        with self._ctl_lock:
            self._families[sess.uid] = self._families.get(sess.uid, 0) + 1
        try:
            chan = sess._chan
            chan.settimeout(_START_TIMEOUT_S)
            _kernel.send(chan, {"op": "fork", "workdir": workdir}, (box.fileno(),))
            box.close()
            reply, _ = _kernel.recv(chan, sess._max_frame)
            if not reply or not reply.get("ok"):
                why = (reply or {}).get("error", "its kernel did not answer")
                raise AgentRLError(f"forking the sandbox session failed: {why} (raise max_procs?)")
            child = LocalSession(self, host, sess.uid, workdir)
        except BaseException as e:
            box.close()
            host.close()
            self._release_uid(sess.uid)
            if isinstance(e, OSError | _kernel.ProtocolError):
                raise AgentRLError(f"forking the sandbox session failed: {e}") from None
            raise
        self._sessions.add(child)
        return child

    def _reap(self, uid: int | None, sid: int | None = None) -> None:
        """Kill every process of a session family, or of one session (`sid`: the pid of its first
        kernel process, which leads its process session). Needs families to have their own uids."""
        if uid is None or not self._multi_uid or self._closed:
            return
        with self._ctl_lock:
            if self._ctl is not None:
                try:
                    _kernel.send(self._ctl, {"op": "reap", "uid": uid, "sid": sid})
                except OSError:
                    pass

    # -- close ------------------------------------------------------------------------------
    def close(self) -> None:
        """Kill the container and everything in it; harmless to call twice."""
        with self._ctl_lock:
            if self._closed:
                return
            self._closed = True
        self._finalizer()  # kills the container: every channel's far end closes
        for sess in list(self._sessions):
            sess._closed = True  # not under its lock: a cell may be running; its run() returns now
            chan = sess._chan
            if chan is not None:
                try:
                    chan.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if sess._lock.acquire(blocking=False):  # else the running cell's run() closes it
                try:
                    if sess._chan is not None:
                        sess._chan.close()
                        sess._chan = None
                finally:
                    sess._lock.release()
        self._ctl = None
        self._stderr.close()

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pid={self._proc.pid if self._proc else None}"
        return f"LocalSandbox({self.isolation}, {state})"


def _forget_session(sandbox_ref, box: list, uid: int | None) -> None:
    chan, box[0] = box[0], None
    if chan is not None:
        try:
            _kernel.send(chan, {"op": "close"})
        except OSError:
            pass
        chan.close()
    sandbox = sandbox_ref()
    if sandbox is not None and not sandbox._closed:
        sandbox._release_uid(uid)


def _cleanup(proc: subprocess.Popen | None, ctl: socket.socket | None, tmp: str) -> None:
    if ctl is not None:
        ctl.close()  # the zygote exits on EOF, which ends the container
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    shutil.rmtree(tmp, ignore_errors=True)


def limits_from(**kw) -> Limits:
    """Limits from keyword arguments, with a clear error for a misspelt one."""
    fields = Limits.__dataclass_fields__
    unknown = sorted(set(kw) - set(fields))
    if unknown:
        raise AgentRLError(f"unknown sandbox option(s) {unknown}; known: {sorted(fields)}")
    if "preload" in kw:
        kw["preload"] = tuple(kw["preload"] or ())
    if "files" in kw:
        kw["files"] = dict(kw["files"] or {})
    return replace(Limits(), **kw)
