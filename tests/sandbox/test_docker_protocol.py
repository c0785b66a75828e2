"""The docker backend's transport, checked without an engine: the kernel runs here as the container
runs it (``python3 -I -S -c <kernel> --listen <socket> --seccomp <filter>``, config through the
socket, sessions through relays), only without the container around it. Also the demultiplexing of
`docker exec` output."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile

import pytest

from agentrl.sandbox import _kernel
from agentrl.sandbox.docker import _ExecChannel, seccomp_args
from agentrl.sandbox.local import KERNEL_PATH

from .sandbox_helpers import alive, wait_until

SOURCE = KERNEL_PATH.read_text()
CFG = {
    "op": "config",
    "limits": {
        "memory_mb": 1024,
        "cpu_s": 10,
        "file_size_mb": 8,
        "max_open_files": 256,
        "max_procs": 64,
        "max_output_bytes": 4096,
    },
    "preload": [],
    "env": {"PATH": "/usr/bin:/bin"},
    "files_inline": {"in.txt": "aGk="},
    "limit_procs": False,
}
x86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="the seccomp filter is written for x86_64 only")


class Box:
    """A zygote started the way the container starts it, in a short temporary directory (Unix
    socket paths are limited to 108 bytes), and the relays attached to it."""

    def __init__(self, *args: str, cfg: dict = CFG, stderr=None, relay_args: tuple[str, ...] | None = None):
        self.dir = tempfile.mkdtemp(prefix="agentrl-dk-")
        self.sock = f"{self.dir}/z.sock"
        self.procs: list[subprocess.Popen] = []
        self.chans: list[socket.socket] = []
        try:
            self.zygote = self._spawn("--listen", self.sock, *args, stderr=stderr)
            chan, relay = self.attach(self.sock, *(args if relay_args is None else relay_args))
            _kernel.send(chan, cfg)
            self.ready = _kernel.recv(chan)[0]
            chan.close()
            relay.wait(10)
        except BaseException:
            self.close()
            raise

    def _spawn(self, *args: str, **kw) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", SOURCE, *args], **kw)
        self.procs.append(proc)
        return proc

    def attach(self, path: str, *args: str) -> tuple[socket.socket, subprocess.Popen]:
        """A relay as `docker exec -i` starts it: its stdin and stdout are the host's stream."""
        host, box = socket.socketpair()
        relay = self._spawn("--attach", path, *args, stdin=box, stdout=box)
        box.close()
        host.settimeout(10)
        self.chans.append(host)
        return host, relay

    def session(self, name: str, *args: str) -> tuple[socket.socket, subprocess.Popen, dict]:
        chan, relay = self.attach(self.sock, *args)
        _kernel.send(chan, {"op": "new", "uid": None, "workdir": f"{self.dir}/{name}", "copy_files": True})
        hello = _kernel.recv(chan)[0]
        assert hello["ready"], hello
        return chan, relay, hello

    def close(self) -> None:
        """End the streams first, so that each relay ends its session as it would in a container,
        then kill what is left: the zygote, and any process still working in this directory."""
        for chan in self.chans:
            chan.close()
        for p in self.procs:
            try:
                p.wait(5 if p is not self.zygote else 0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/cwd").startswith(self.dir + "/"):
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def run(chan: socket.socket, code: str, timeout: float = 5) -> dict:
    _kernel.send(chan, {"op": "run", "code": code, "timeout": timeout})
    return _kernel.recv(chan)[0]


@pytest.fixture
def box():
    boxes = []
    yield lambda *args, **kw: boxes.append(Box(*args, **kw)) or boxes[-1]
    for b in boxes:
        b.close()


def test_config_through_the_socket_relay_and_fork(box):
    b = box()
    assert b.ready == {"ready": True, "failed": [], "error": None, "seccomp": False}
    chan, _, _ = b.session("s1")
    assert run(chan, "x = 1\nopen('in.txt').read()")["result"] == "'hi'"

    fsock = f"{b.dir}/f.sock"
    _kernel.send(chan, {"op": "fork", "workdir": f"{b.dir}/s2", "listen": fsock})
    assert _kernel.recv(chan)[0]["ok"]
    fchan, _ = b.attach(fsock)
    assert _kernel.recv(fchan)[0]["ready"]
    assert run(fchan, "x += 1\nx")["result"] == "2"
    assert run(chan, "x")["result"] == "1"
    for c in (chan, fchan):
        _kernel.send(c, {"op": "close"})
        c.close()


def test_a_failed_preload_is_answered_not_silent(box):
    b = box(cfg=dict(CFG, preload=["no_such_module_here"]), stderr=subprocess.DEVNULL)
    assert b.ready["ready"] is False and "no_such_module_here" in b.ready["failed"][0]
    assert b.zygote.wait(10) == 1  # the container ends with it


@x86_64
def test_cells_of_the_docker_kernel_run_under_the_project_seccomp_filter(box):
    """The zygote installs the filter itself (stacked on whatever it runs under: Docker's default
    profile in a container); its sessions and cells inherit it. The same cell without the filter
    shows that the filter is what refuses."""
    args = seccomp_args()
    filtered = box(*args)
    assert filtered.ready["ready"] and filtered.ready["seccomp"] is True
    chan, _, _ = filtered.session("s1", *args)
    probe = (
        "import os, ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "mode = [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0]\n"
        "try:\n    os.kill(-1, 0)\n    kill = 'allowed'\nexcept PermissionError:\n    kill = 'EPERM'\n"
        "(mode, kill, libc.syscall(250, 0, ctypes.c_long(-3), 0), ctypes.get_errno())"
    )
    assert run(chan, probe)["result"] == "('2', 'EPERM', -1, 1)"  # seccomp mode 2 = filter; keyctl: EPERM
    assert (
        run(chan, "import ctypes\nctypes.CDLL(None, use_errno=True).unshare(0x10000000), ctypes.get_errno()")["result"]
        == "(-1, 1)"
    )
    assert run(chan, "6 * 7")["result"] == "42"  # and ordinary cells run as before

    plain = box()
    assert plain.ready["seccomp"] is False
    chan, _, _ = plain.session("s1")
    result = run(chan, probe)["result"]
    assert result.startswith("('0', 'allowed'")  # unfiltered here: the filter made the difference


def test_a_filter_the_kernel_refuses_stops_the_start_and_another_machines_is_skipped(box):
    bad = ("--seccomp", f"{platform.machine()}:")  # an empty program: the kernel answers EINVAL
    refused = box(*bad, stderr=subprocess.DEVNULL, relay_args=())
    assert refused.ready["ready"] is False and "installing the seccomp filter failed" in refused.ready["error"]
    assert refused.zygote.wait(10) == 1
    relay_refused = box(relay_args=bad)  # a relay that cannot filter itself relays nothing, and says why
    assert (
        relay_refused.ready["ready"] is False and "installing the seccomp filter failed" in relay_refused.ready["error"]
    )
    other = box("--seccomp", "sparc64:AAAAAAAAAAA=")  # written for another machine: nothing to install here
    assert other.ready["ready"] is True and other.ready["seccomp"] is False


@x86_64
def test_a_relay_installs_the_filter_too(box):
    """A relay runs our code next to the cells, as their uid; it is filtered like them."""
    b = box(*seccomp_args())
    chan, relay, _ = b.session("s1", *seccomp_args())
    with open(f"/proc/{relay.pid}/status") as f:
        assert "Seccomp:\t2" in f.read()


def _started_session(b: Box) -> tuple[socket.socket, subprocess.Popen, dict, dict[str, int]]:
    """A session whose cell runs for a minute with a child in its own process session: the pids of
    the kernel, the cell and that child, read from files the cell writes."""
    chan, relay, hello = b.session("s1")
    code = (
        "import os, subprocess, time\n"
        "p = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "open('pids', 'w').write(f'{os.getppid()} {os.getpid()} {p.pid}')\n"
        "time.sleep(60)"
    )
    _kernel.send(chan, {"op": "run", "code": code, "timeout": 60})
    pids_file = f"{b.dir}/s1/pids"
    assert wait_until(lambda: os.path.exists(pids_file) and len(open(pids_file).read().split()) == 3)
    kernel, cell, child = map(int, open(pids_file).read().split())
    return chan, relay, hello, {"kernel": kernel, "cell": cell, "child": child}


def test_a_relay_whose_stream_ends_kills_its_session_and_exits(box):
    """The host closes the exec stream (session closed, or given up on) while a cell runs: the
    relay kills the kernel, the cell and what the cell started, even in another process session,
    and exits. A fork of that session, a session of its own, lives on."""
    b = box()
    chan, relay, hello, pids = _started_session(b)
    assert hello["pid"] == pids["kernel"]
    neighbour, _, _ = b.session("s3")
    assert all(alive(p) for p in pids.values())
    chan.shutdown(socket.SHUT_RDWR)  # the host is gone: the relay's stdin ends
    chan.close()
    assert relay.wait(10) == 0
    assert wait_until(lambda: not any(alive(p) for p in pids.values())), pids
    assert alive(b.zygote.pid)
    assert run(neighbour, "1 + 1")["result"] == "2"


def test_a_relay_spares_the_forks_of_its_session(box):
    b = box()
    chan, relay, hello = b.session("s1")
    fsock = f"{b.dir}/f.sock"
    _kernel.send(chan, {"op": "fork", "workdir": f"{b.dir}/s2", "listen": fsock})
    fork_pid = _kernel.recv(chan)[0]["pid"]
    fchan, _ = b.attach(fsock)
    assert _kernel.recv(fchan)[0]["pid"] == fork_pid
    chan.close()
    assert relay.wait(10) == 0
    assert wait_until(lambda: not alive(hello["pid"]))
    assert alive(fork_pid) and run(fchan, "'fork here'")["result"] == "'fork here'"


def test_reap_mode_kills_a_stopped_kernel_and_its_cell(box):
    """What the host execs when a kernel stopped answering (here: its cell stopped it), in case
    its relay cannot do it."""
    b = box()
    chan, relay, hello, pids = _started_session(b)
    os.kill(pids["kernel"], signal.SIGSTOP)
    reaper = b._spawn("--reap", str(hello["pid"]))
    assert reaper.wait(10) == 0
    assert wait_until(lambda: not any(alive(p) for p in pids.values())), pids
    assert relay.wait(10) == 0  # its session gone, the relay ends too
    assert alive(b.zygote.pid)


def test_kill_session_never_takes_init_or_itself():
    _kernel.kill_session(1)
    _kernel.kill_session(0)
    assert alive(os.getpid())


def test_a_relay_reads_only_a_session_hello():
    frame = json.dumps({"ready": True, "pid": 42, "workdir": "/home/s1"}).encode()
    head = bytearray(struct.pack(">I", len(frame)) + frame)
    assert _kernel._hello_sid(head[:3]) == (None, head[:3])
    assert _kernel._hello_sid(head[:10]) == (None, head[:10])
    assert _kernel._hello_sid(head) == (42, None)
    reply = json.dumps({"ready": True, "failed": [], "seccomp": True}).encode()  # the zygote's config answer
    assert _kernel._hello_sid(bytearray(struct.pack(">I", len(reply)) + reply)) == (None, None)
    assert _kernel._hello_sid(bytearray(struct.pack(">I", 1 << 20))) == (None, None)


def test_exec_stream_demultiplexing():
    raw, far = socket.socketpair()
    frame = json.dumps({"ready": True}).encode()
    payload = struct.pack(">I", len(frame)) + frame
    for stream, chunk in ((1, payload[:3]), (2, b"noise on stderr"), (1, payload[3:])):
        far.sendall(bytes([stream, 0, 0, 0]) + struct.pack(">I", len(chunk)) + chunk)
    chan = _ExecChannel(raw)
    chan.settimeout(5)
    assert _kernel.recv(chan)[0] == {"ready": True}
    far.close()
    assert _kernel.recv(chan)[0] is None


def test_closing_an_exec_channel_ends_the_stream_while_a_file_object_holds_it():
    """docker-py keeps the exec's socket open through a file object of its response: the channel
    must shut the connection down, not only drop its reference, or the relay never sees stdin end."""
    raw, far = socket.socketpair()
    held = raw.makefile("rb")  # as docker-py's response holds it
    far.settimeout(5)
    _ExecChannel(raw).close()
    assert far.recv(1) == b""
    held.close()
