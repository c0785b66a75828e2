"""The kernel program that runs INSIDE a sandbox: a zygote, its session processes, their cells.

Standard library only; it runs under `python -I -S` (no site, no environment), so importing it costs
little. The host side imports this module too, for the framing functions (`send`, `recv`), so both
ends speak one protocol. It must never import anything from agentrl.

Processes (all inside one container):

    zygote (ns uid 0, holds CAP_SETUID/SETGID only)   imports `preload` once, then loops on the
      │                                                control socket: "new" -> fork a session,
      │                                                "reap" -> kill every process of a uid.
      └─ session process S (own uid, no capabilities)  holds the state (its __main__ dict); serves
           │                                           its channel socket: run / fork / close.
           └─ cell process C (fork of S)               runs one cell. Success: S hands C the channel
                                                       and exits, C is the new S (state moves on).
                                                       Timeout/crash/SystemExit/MemoryError: S kills
                                                       C and keeps serving with the old state.

Frames are a 4-byte big-endian length and a JSON object; file descriptors (a new channel for a
session or a fork) ride along as SCM_RIGHTS on the first byte of a frame.

Docker mode (`zygote_listen`, `relay`, `kill_session`): the zygote listens on a Unix socket; the
first connection brings its config, each later one asks for a session. The host reaches a session
through a `relay` process (``docker exec -i``) that copies its stdin/stdout to the socket and, when
its stdin ends, kills the session it served. ``--seccomp ARCH:BASE64`` on any mode's command line
installs that filter first (`load_seccomp`); bubblewrap loads it for the local mode.
"""

from __future__ import annotations

import array
import ast
import builtins
import json
import linecache
import os
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import time
import traceback
import types

_HDR = struct.Struct(">I")
_MAX_FDS = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


# ---------------------------------------------------------------- framing (shared with the host)
class ProtocolError(Exception):
    """The other end sent something that is not a frame of this protocol."""


def send(sock: socket.socket, obj: object, fds: tuple[int, ...] = ()) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    buf = _HDR.pack(len(data)) + data
    if fds:
        n = sock.sendmsg([buf], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        buf = buf[n:]
    if buf:
        sock.sendall(buf)


def _recv_exact(sock: socket.socket, n: int, fds: list[int]) -> bytes | None:
    chunks = []
    while n:
        data, anc, _flags, _addr = sock.recvmsg(n, socket.CMSG_SPACE(_MAX_FDS * 4))
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(cdata[: len(cdata) - len(cdata) % got.itemsize])
                fds.extend(got)
        if not data:
            return None
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def recv(sock: socket.socket, max_bytes: int = 1 << 30) -> tuple[dict | None, list[int]]:
    """One frame: (object, received fds), or (None, []) at end of stream."""
    fds: list[int] = []
    hdr = _recv_exact(sock, 4, fds)
    if hdr is None:
        return None, fds
    (size,) = _HDR.unpack(hdr)
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds {max_bytes}")
    data = _recv_exact(sock, size, fds) if size else b""
    if data is None:
        return None, fds
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise ProtocolError(f"bad frame: {e}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("frame is not an object")
    return obj, fds


# ---------------------------------------------------------------- small process helpers
_libc = None


def _prctl(option: int, arg: int) -> None:
    global _libc
    try:
        if _libc is None:  # loaded once in the zygote, inherited by every fork
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(option, arg, 0, 0, 0)
    except Exception:
        pass


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process session id) for every process of this pid namespace (from /proc)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[-1].split()
            table[int(name)] = (int(fields[1]), int(fields[3]))
        except (OSError, IndexError, ValueError):
            continue
    return table


def _proc_parents() -> dict[int, int]:
    """pid -> parent pid for every process of this pid namespace."""
    return {pid: parent for pid, (parent, _sid) in _proc_table().items()}


def _children(table: dict[int, tuple[int, int]]) -> dict[int, list[int]]:
    """parent pid -> its children's pids, from a `_proc_table`."""
    kids: dict[int, list[int]] = {}
    for pid, (parent, _sid) in table.items():
        kids.setdefault(parent, []).append(pid)
    return kids


def _stop_then_kill(select, first: tuple[int, ...] = ()) -> None:
    """SIGKILL `first` and the processes `select` picks from the process table: SIGSTOP them round by
    round until a round picks no new one (a stopped process can neither fork nor reparent its
    children), then kill them all. A fork bomb converges in a few rounds."""
    stopped = list(first)
    for pid in stopped:
        _signal(pid, signal.SIGSTOP)
    seen = set(stopped)
    for _ in range(200):
        new = [pid for pid in select(_proc_table()) if pid not in seen]
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
            seen.add(pid)
            stopped.append(pid)
    for pid in stopped:
        _signal(pid, signal.SIGKILL)


def _kill_tree(root: int, include_root: bool = True) -> None:
    """SIGKILL `root`'s whole process tree (`_stop_then_kill`)."""

    def descendants(table: dict[int, tuple[int, int]]) -> list[int]:
        kids, found = _children(table), []
        stack = list(kids.get(root, []))
        while stack:
            pid = stack.pop()
            found.append(pid)
            stack.extend(kids.get(pid, []))
        return found

    _stop_then_kill(descendants, (root,) if include_root else ())


def kill_session(sid: int) -> None:
    """SIGKILL a session kernel (docker mode): every process of its process session `sid` (the pid
    its first kernel process gave in its hello, which leads that session) and everything its cells
    started, setsid or not (`_stop_then_kill`). Its forks, which lead process sessions of their own
    as children of the kernel, live on."""
    if sid <= 1:
        return
    me = os.getpid()

    def session_processes(table: dict[int, tuple[int, int]]) -> set[int]:
        kids = _children(table)
        members = {pid for pid, (_parent, s) in table.items() if s == sid}
        victims = set(members)
        # below a member whose parent is a member (a cell, or a process a thread started), take
        # everything; below the kernel itself (a member whose parent is not) only members, so not forks
        stack = [pid for pid in members if table[pid][0] in members]
        while stack:
            pid = stack.pop()
            victims.add(pid)
            stack.extend(k for k in kids.get(pid, []) if k not in victims)
        return victims - {me}

    _stop_then_kill(session_processes)


def load_seccomp(spec: str) -> bool:
    """Install a seccomp filter on this process and everything it forks, for good (with
    no_new_privs, which it sets). `spec` is "ARCH:BASE64" (the machine the filter is written for and
    its `struct sock_filter` array). On another machine it installs nothing and returns False; a
    filter that the kernel refuses raises OSError."""
    global _libc
    import base64
    import ctypes

    arch, _, b64 = spec.partition(":")
    if os.uname().machine != arch:
        return False
    prog = base64.b64decode(b64)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    ul = ctypes.c_ulong
    for option, arg in ((PR_SET_NO_NEW_PRIVS, ul(1)), (PR_SET_SECCOMP, ul(SECCOMP_MODE_FILTER))):
        extra = ctypes.byref(fprog) if option == PR_SET_SECCOMP else ul(0)
        if _libc.prctl(option, arg, extra, ul(0), ul(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _kill_descendants() -> None:
    """In a cell's process (a child subreaper): kill every process the cell started, reap them."""
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            _kill_tree(os.getpid(), include_root=False)
        while True:  # orphans come back to us as zombies; reap until none is left
            os.waitpid(-1, 0)
    except ChildProcessError:
        pass


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


# ---------------------------------------------------------------- the session kernel
_ROLLBACK = ("SystemExit", "MemoryError", "KeyboardInterrupt")
_MAX_STATUS = 1 << 26
_GARBLED = {"error": ["SandboxCrash", "the cell garbled its status channel; state rolled back", ""], "rollback": True}


class Kernel:
    """One session's state and its serve loop; runs in S, and in C after C takes over."""

    def __init__(self, cfg: dict, chan: socket.socket, workdir: str) -> None:
        self.cfg = cfg
        self.chan = chan
        self.workdir = workdir
        self.cells = 0
        self.forks: set[int] = set()  # sessions this process forked (its children, not its cells')
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        self.ns = main.__dict__
        self.max_out = int(cfg["limits"]["max_output_bytes"])

    # -- serve loop -------------------------------------------------------------------------
    def serve(self) -> None:
        self._hello()
        while True:
            try:
                msg, fds = recv(self.chan)
            except (OSError, ProtocolError):
                os._exit(0)
            if msg is None:
                os._exit(0)
            op = msg.get("op")
            if op == "run":
                self.run_cell(str(msg.get("code", "")), float(msg.get("timeout", 10.0)))
            elif op == "fork" and (fds or msg.get("listen")):
                self.fork(fds[0] if fds else None, str(msg["workdir"]), msg.get("listen"))
            elif op == "close":
                self._kill_strays()
                os._exit(0)
            else:
                for fd in fds:
                    os.close(fd)
                send(self.chan, {"error": f"unknown op {op!r}"})

    def _kill_strays(self) -> None:
        """Kill and reap the children of this process that are not forked sessions: processes started
        by threads that outlived their cell, and what a crashed or timed-out cell left (its orphans
        come back here while a cell runs), so that nothing a cell started outlives it."""
        me = os.getpid()
        for _ in range(100):  # a killed stray's orphans come back here too: another round takes them
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return  # no children at all: the common case costs one syscall
            strays = [p for p, parent in _proc_parents().items() if parent == me and p not in self.forks]
            if not strays:
                return
            for pid in strays:
                _kill_tree(pid)
            for pid in strays:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass

    def _hello(self) -> None:
        send(self.chan, {"ready": True, "pid": os.getpid(), "workdir": self.workdir})

    # -- fork -------------------------------------------------------------------------------
    def fork(self, new_fd: int | None, workdir: str, listen: str | None = None) -> None:
        """Copy this session. Its channel is `new_fd` (local) or the first connection to the
        Unix socket `listen` (docker, where the host reaches it through a relay)."""
        listener = None
        if new_fd is None:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(listen)
            listener.listen(1)
        _flush()
        try:
            pid = os.fork()
        except OSError as e:
            if listener is not None:
                listener.close()
                os.unlink(listen)
            else:
                os.close(new_fd)
            send(self.chan, {"ok": False, "error": f"fork failed: {e.strerror}"})
            return
        if pid == 0:  # F: the copy; from here on it serves its own channel
            try:
                os.setsid()
                self.chan.close()
                if listener is not None:
                    listener.settimeout(60)
                    self.chan, _ = listener.accept()
                    self.chan.settimeout(None)
                    listener.close()
                    os.unlink(listen)
                else:
                    self.chan = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=new_fd)
                old, cwd = self.workdir, os.getcwd()
                shutil.copytree(old, workdir, symlinks=True, dirs_exist_ok=True)
                os.chmod(workdir, 0o700)
                self.workdir = workdir
                rel = os.path.relpath(cwd, old)
                os.chdir(workdir if rel.startswith("..") else os.path.join(workdir, rel))
                os.environ["HOME"] = workdir
                self.forks = set()
                self._hello()
                return  # back to the serve loop, as the copy
            except BaseException:
                os._exit(70)
        if listener is not None:
            listener.close()
        else:
            os.close(new_fd)
        self.forks.add(pid)
        send(self.chan, {"ok": True, "pid": pid})

    # -- one cell ---------------------------------------------------------------------------
    def run_cell(self, code: str, timeout: float) -> None:
        t0 = time.monotonic()
        self.cells += 1
        try:  # reap forks that ended
            while pid := os.waitpid(-1, os.WNOHANG)[0]:
                self.forks.discard(pid)
        except ChildProcessError:
            self.forks.clear()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ks, cs = socket.socketpair()
        _flush()
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # while the cell runs: its orphans come back here, not to init
        try:
            pid = os.fork()
        except OSError as e:  # e.g. EAGAIN: the family is at max_procs
            _prctl(PR_SET_CHILD_SUBREAPER, 0)
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            ks.close()
            cs.close()
            why = f"could not start the cell: {e.strerror} (processes of this session and its forks: max_procs)"
            send(self.chan, {"error": ["SandboxCrash", why, ""], "stdout": "", "stderr": ""})
            return
        if pid == 0:
            self._child(code, cs, ks, out_r, out_w, err_r, err_w)
            return  # C took over: back to the serve loop as the session process
        cs.close()
        os.close(out_w)
        os.close(err_w)
        self._monitor(pid, ks, out_r, err_r, t0, timeout)

    def _child(self, code, cs, ks, out_r, out_w, err_r, err_w) -> None:
        try:
            os.setpgid(0, 0)
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
            ks.close()
            self.chan.close()  # the cell never holds the session's channel
            os.close(out_r)
            os.close(err_r)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.close(out_w)
            os.close(err_w)
            _std_streams()
            me = os.getpid()
            status = self._execute(code)
            if os.getpid() != me:  # a process the cell forked, which ran on to the cell's end
                _flush()
                os._exit(0)
            _flush()
            _kill_descendants()  # processes a cell started do not outlive it
            _prctl(PR_SET_CHILD_SUBREAPER, 0)  # as the next session process, orphans go to init
            send(cs, status)
            msg, fds = recv(cs)
            if msg is None or msg.get("op") != "go" or not fds:
                os._exit(0)
            self.chan = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fds[0])
            cs.close()
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
            _std_streams()
            self.forks = set()
        except BaseException:
            os._exit(70)

    def _execute(self, code: str) -> dict:
        name = f"<cell-{self.cells}>"
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        result = error = None
        try:
            tree = ast.parse(code, name, "exec")
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
                last = ast.Expression(tree.body.pop().value)
            exec(compile(tree, name, "exec"), self.ns)
            if last is not None:
                value = eval(compile(last, name, "eval"), self.ns)
                if value is not None:
                    self.ns["_"] = value
                    result = _clip(repr(value), self.max_out)
        except BaseException as e:  # noqa: BLE001 - a cell may raise anything, SystemExit included
            error = _error_info(e, self.max_out)
        return {"result": result, "error": error, "rollback": bool(error and error[0] in _ROLLBACK)}

    def _monitor(self, pid: int, ks: socket.socket, out_r: int, err_r: int, t0: float, timeout: float):
        deadline = t0 + timeout
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # kernel < 5.3: poll waitpid instead
            pidfd = None
        outs = {out_r: bytearray(), err_r: bytearray()}
        budget, truncated = self.max_out, False
        sbuf, status, died = bytearray(), None, None
        watch = [out_r, err_r, ks.fileno()] + ([pidfd] if pidfd is not None else [])

        def drain(fd: int) -> bool:
            nonlocal budget, truncated
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                return False
            keep = chunk[: max(budget, 0)]
            outs[fd] += keep
            budget -= len(keep)
            truncated |= len(keep) < len(chunk)
            return True

        while status is None and died is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(watch, [], [], left if pidfd is not None else min(left, 0.05))
            if pidfd is None:
                wpid, wstatus = os.waitpid(pid, os.WNOHANG)
                if wpid:
                    died = wstatus
            for fd in ready:
                if fd in outs:
                    if not drain(fd):
                        watch.remove(fd)
                elif fd == pidfd:
                    died = os.waitpid(pid, 0)[1]
                    watch.remove(pidfd)
                else:
                    chunk = ks.recv(1 << 20)
                    if not chunk:
                        watch.remove(fd)
                    sbuf += chunk
                    size = _HDR.unpack_from(sbuf)[0] if len(sbuf) >= 4 else 0
                    if size > _MAX_STATUS:
                        status = _GARBLED
                    elif len(sbuf) >= 4 + size > 4:
                        try:
                            status = json.loads(bytes(sbuf[4 : 4 + size]))
                        except ValueError:
                            status = _GARBLED
                        if not isinstance(status, dict):
                            status = _GARBLED
        # collect what is still buffered in the pipes (without waiting on stray writers)
        for fd in (out_r, err_r):
            while fd in watch and select.select([fd], [], [], 0)[0] and drain(fd):
                pass
        timed_out = status is None and died is None
        took_over = False
        if status is not None and died is not None:
            status = None  # it sent a result, then died before taking over: treat as a crash
        if status is not None and not status.get("rollback"):
            try:
                send(ks, {"op": "go"}, (self.chan.fileno(),))
                took_over = True
            except OSError:
                status = {"error": ["SandboxCrash", "the cell's process vanished", ""]}
        if not took_over:
            if died is None:
                _kill_tree(pid)  # the cell and everything it started, all stopped before any is killed
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            self._kill_strays()  # what a crashed cell started: its orphans came back to this process
            _prctl(PR_SET_CHILD_SUBREAPER, 0)
        if pidfd is not None:
            os.close(pidfd)
        os.close(out_r)
        os.close(err_r)
        ks.close()
        error = None
        if timed_out:
            error = ["TimeoutError", f"cell exceeded its {timeout:g} s time limit; state rolled back", ""]
        elif status is None:
            error = _crash_info(died, self.cfg["limits"])
        elif status.get("error"):
            error = status["error"]
        reply = {
            "stdout": outs[out_r].decode("utf-8", "replace"),
            "stderr": outs[err_r].decode("utf-8", "replace"),
            "result": status.get("result") if status else None,
            "error": error,
            "timed_out": timed_out,
            "truncated": truncated,
        }
        send(self.chan, reply)
        if took_over:
            os._exit(0)  # C is the session now


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "...[truncated]"


def _error_info(e: BaseException, limit: int) -> list:
    tb = e.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    if isinstance(e, SyntaxError):
        text = "".join(traceback.format_exception_only(type(e), e))
    else:
        text = "".join(traceback.format_exception(type(e), e, tb))
    try:
        value = str(e)
    except Exception:
        value = "<unprintable>"
    return [type(e).__name__, _clip(value, limit), _clip(text, limit)]


def _crash_info(status: int | None, limits: dict) -> list:
    if status is None:
        return ["SandboxCrash", "the cell's process ended without a result; state rolled back", ""]
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return ["CPUTimeExceeded", f"cell used more than {limits['cpu_s']} s of CPU; state rolled back", ""]
        return ["SandboxCrash", f"the cell's process died with {_signal_name(sig)}; state rolled back", ""]
    code = os.WEXITSTATUS(status)
    return ["SandboxCrash", f"the cell's process exited with status {code}; state rolled back", ""]


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _std_streams() -> None:
    """Fresh Python stream objects on fds 0-2 (the fds were just redirected)."""
    opts = {"encoding": "utf-8", "errors": "backslashreplace", "closefd": False}
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, **opts)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, **opts)  # noqa: SIM115


# ---------------------------------------------------------------- the zygote
def _limit(kind: int, value: int) -> None:
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass


def _enter_session(cfg: dict, msg: dict) -> str:
    """In a freshly forked session process: drop to the session's uid, apply limits, make a workdir."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    uid = msg.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.umask(0o077)
    lim = cfg["limits"]
    _limit(resource.RLIMIT_AS, lim["memory_mb"] << 20)
    resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))
    _limit(resource.RLIMIT_FSIZE, lim["file_size_mb"] << 20)
    _limit(resource.RLIMIT_NOFILE, lim["max_open_files"])
    _limit(resource.RLIMIT_CORE, 0)
    if cfg.get("limit_procs", True):
        _limit(resource.RLIMIT_NPROC, lim["max_procs"])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails with EFBIG instead
    workdir = msg["workdir"]
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    if msg.get("copy_files") and cfg.get("files_dir"):
        shutil.copytree(cfg["files_dir"], workdir, dirs_exist_ok=True)
    if msg.get("copy_files") and cfg.get("files_inline"):  # docker: {relative path: base64}
        import base64

        for rel, data in cfg["files_inline"].items():
            path = os.path.join(workdir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(base64.b64decode(data))
    os.chdir(workdir)
    os.environ["HOME"] = workdir
    return workdir


def _reap(uid: int, sid: int | None) -> None:
    """Kill every process of `uid` (of its session `sid` only, when given): a helper becomes that
    uid, stops them all, then kills them."""
    if os.fork() == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            me = os.getpid()
            for _ in range(20):
                victims = [p for p in _proc_parents() if p != me and _owned(p, uid, sid)]
                if not victims:
                    break
                for pid in victims:
                    _signal(pid, signal.SIGSTOP)
                for pid in victims:
                    _signal(pid, signal.SIGKILL)
        except BaseException:
            pass
        os._exit(0)


def _owned(pid: int, uid: int, sid: int | None) -> bool:
    """Whether a process runs as `uid` (and, unless `sid` is None, in session `sid`)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            if next(int(line.split()[1]) for line in f if line.startswith(b"Uid:")) != uid:
                return False
        if sid is None:
            return True
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[-1].split()[3]) == sid
    except (OSError, ValueError, IndexError, StopIteration):
        return False


def _prepare(cfg: dict) -> list[str]:
    """Zygote set-up: paths, environment, preloads. Returns the preloads that failed."""
    for path in cfg.get("sys_path", []):
        if path not in sys.path:
            sys.path.append(path)
    os.environ.clear()
    os.environ.update(cfg.get("env", {}))
    sys.argv = [""]
    failed = []
    for mod in cfg.get("preload", []):
        try:
            __import__(mod)
        except Exception as e:  # reported to the host, which raises a clear error
            failed.append(f"{mod}: {type(e).__name__}: {e}")
    sys.path.insert(0, "")
    _prctl(PR_SET_PDEATHSIG, 0)  # loads libc now, so that no cell pays for it
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # session processes are reaped automatically
    return failed


def _start_session(cfg: dict, msg: dict, chan_fd: int, close: tuple = ()) -> None:
    """Fork a session process serving `chan_fd`; the zygote keeps nothing of it."""
    _flush()
    if os.fork() == 0:
        try:
            for obj in close:
                obj.close()
            workdir = _enter_session(cfg, msg)
            chan = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=chan_fd)
            Kernel(cfg, chan, workdir).serve()
        except BaseException:
            traceback.print_exc()
        os._exit(0)
    os.close(chan_fd)


def zygote(ctl_fd: int) -> None:
    """Local mode: config and session channels (SCM_RIGHTS) come over the control socket."""
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=ctl_fd)
    cfg, _ = recv(ctl)
    if cfg is None:
        return
    failed = _prepare(cfg)
    send(ctl, {"ready": not failed, "failed": failed, "pid": os.getpid()})
    while True:
        try:
            msg, fds = recv(ctl)
        except (OSError, ProtocolError):
            break
        if msg is None:
            break  # the host is gone: exiting ends the whole container
        op = msg.get("op")
        if op == "new" and fds:
            for fd in fds[1:]:
                os.close(fd)
            _start_session(cfg, msg, fds[0], close=(ctl,))
        elif op == "reap":
            _reap(int(msg["uid"]), msg.get("sid"))
        elif op == "exit":
            break
        else:
            for fd in fds:
                os.close(fd)
    os._exit(0)


def zygote_listen(path: str, seccomp: str | None = None) -> None:
    """Docker mode: sessions arrive as connections to a Unix socket (from `relay` processes that
    `docker exec` starts). The filter `seccomp` is installed first, before anything else runs. The
    first connection brings the config (limits, preloads, inline files: too large for a command
    line) and gets {"ready", "failed", "error", "seccomp"} back; each later connection's first frame
    asks for a new session."""
    error, filtered = None, False
    if seccomp:
        try:
            filtered = load_seccomp(seccomp)
        except Exception as e:  # reported to the host through the first connection, which raises a clear error
            error = f"installing the seccomp filter failed: {type(e).__name__}: {e}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    listener.bind(path)
    listener.listen(128)
    cfg = None
    while cfg is None:
        conn, _ = listener.accept()
        try:
            msg, _ = recv(conn)
        except (OSError, ProtocolError):
            msg = None
        if msg and msg.get("op") == "config":
            cfg = msg
        else:
            conn.close()
    failed = [] if error else _prepare(cfg)
    reply = {"ready": not (error or failed), "failed": failed, "error": error, "seccomp": filtered}
    try:
        send(conn, reply)
    except OSError:
        pass
    conn.close()
    if not reply["ready"]:
        print(f"the sandbox kernel did not start: {error or '; '.join(failed)}", file=sys.stderr, flush=True)
        os._exit(1)
    while True:
        conn, _ = listener.accept()
        try:
            msg, _ = recv(conn, 1 << 26)
        except (OSError, ProtocolError):
            msg = None
        if msg and msg.get("op") == "new":
            _start_session(cfg, msg, conn.detach(), close=(listener,))
        else:
            conn.close()


_HELLO_MAX = 4096


def relay(path: str, wait_s: float = 30.0) -> None:
    """Copy bytes between stdin/stdout and the Unix socket `path` (a session's channel, through
    `docker exec -i`). Waits up to `wait_s` for the socket to appear.

    When stdin ends, or stdout breaks, the host has closed the session or given up on it: the relay
    then kills that session's kernel, its cells and what they started (`kill_session`, by the pid
    of the session's first frame, its hello) and exits, so nothing it served runs on in the
    container. stdout is written without blocking, so a host that stops reading cannot keep the
    relay from seeing stdin end."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            sock.connect(path)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    os.set_blocking(1, False)
    out = bytearray()  # from the session, not yet written to stdout
    head: bytearray | None = bytearray()  # the session's first frame, until it is read
    sid = None
    sock_open = True
    while sock_open or out:
        watch = [0] + ([sock] if sock_open and len(out) < 1 << 20 else [])
        readable, writable, _ = select.select(watch, [1] if out else [], [])
        host_gone = False
        if 0 in readable:
            try:
                data = os.read(0, 1 << 16)
            except BlockingIOError:  # stdin may share stdout's file (a socket), made non-blocking above
                continue
            except OSError:
                data = b""
            host_gone = not data
            try:
                sock.sendall(data)
            except OSError:
                sock_open = False  # the session is gone; what it sent last still goes out
        if sock in readable:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            sock_open = sock_open and bool(data)
            out += data
            if head is not None and data:
                head += data[: 4 + _HELLO_MAX - len(head)]
                sid, head = _hello_sid(head)
        if writable and not host_gone:
            try:
                del out[: os.write(1, out)]
            except BlockingIOError:
                pass
            except OSError:
                host_gone = True
        if host_gone:
            try:
                sock.shutdown(socket.SHUT_WR)  # a kernel at rest ends on its own
            except OSError:
                pass
            if sid is not None:
                kill_session(sid)
            return


def _hello_sid(head: bytearray) -> tuple[int | None, bytearray | None]:
    """The session id a session's hello names, once `head` holds that frame: (sid or None, None);
    (None, head) while it is incomplete. Frames other than a session's hello name none."""
    if len(head) < 4:
        return None, head
    size = _HDR.unpack_from(head)[0]
    if size > _HELLO_MAX:
        return None, None
    if len(head) < 4 + size:
        return None, head
    try:
        hello = json.loads(bytes(head[4 : 4 + size]))
    except ValueError:
        return None, None
    ok = isinstance(hello, dict) and hello.get("workdir") and type(hello.get("pid")) is int
    return (hello["pid"] if ok else None), None


def main(argv: list[str]) -> None:
    seccomp = None
    if "--seccomp" in argv:
        i = argv.index("--seccomp")
        seccomp = argv[i + 1]
        del argv[i : i + 2]
    if argv[:1] == ["--listen"]:
        zygote_listen(argv[1], seccomp)
        return
    if argv[:1] == ["--attach"]:
        if seccomp:
            try:
                load_seccomp(seccomp)
            except Exception as e:  # refuse to relay, and tell the host why in the frame it waits for
                why = f"installing the seccomp filter failed: {type(e).__name__}: {e}"
                data = json.dumps({"ready": False, "error": why}).encode()
                os.write(1, _HDR.pack(len(data)) + data)
                os._exit(1)
        relay(argv[1])
        return
    if seccomp:
        load_seccomp(seccomp)
    if argv[:1] == ["--reap"]:
        kill_session(int(argv[1]))
    else:
        zygote(int(argv[0]) if argv else 3)


if __name__ == "__main__":
    main(sys.argv[1:])
