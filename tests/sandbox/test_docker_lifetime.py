"""The docker backend's containers, against a fake engine behind the real SDK: the keywords go through docker-py's
own argument builder (`ContainerCollection.create` -> `HostConfig`), and exec keywords are bound to docker-py's own
`exec_create`/`exec_start` signatures, so a renamed or dropped SDK keyword fails here without an engine. Containers
are labelled with their owner, capped, removed on close, on a failed start and when their owner is gone (`agentrl
sandbox gc`).

The fake engine runs what the backend asks for on this machine, without a container: the container's command
(through a real execve, so an argument too long for the kernel fails as it would in the container) and each exec,
its stdin and stdout relayed over a socket in Docker's stream format. The backend's paths inside the container
(`/run/agentrl`, `/home`) point to a temporary directory."""

from __future__ import annotations

import base64
import hashlib
import inspect
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import types

import pytest

docker = pytest.importorskip("docker", reason="the docker SDK is not installed (pip install 'agentrl[docker]')")
from docker.api.exec_api import ExecApiMixin  # noqa: E402
from docker.models.containers import ContainerCollection  # noqa: E402

from agentrl.errors import AgentRLError  # noqa: E402
from agentrl.sandbox import _kernel  # noqa: E402
from agentrl.sandbox import docker as docker_backend  # noqa: E402
from agentrl.sandbox._seccomp import program  # noqa: E402
from agentrl.sandbox.base import Limits  # noqa: E402
from agentrl.sandbox.docker import LABEL, OWNER_HOST, OWNER_PID, DockerSandbox, remove_orphans  # noqa: E402

from .sandbox_helpers import alive, wait_until  # noqa: E402

MAX_ARG_STRLEN = 32 * 4096  # Linux: the longest single argument (or environment string) execve takes
_SUBREAPER = "import ctypes, os, sys; ctypes.CDLL(None).prctl(36, 1, 0, 0, 0); os.execv(sys.argv[1], sys.argv[1:])"


@pytest.fixture(autouse=True)
def container_paths(monkeypatch):
    """The container's /run/agentrl and /home, here: a short temporary directory (Unix socket paths are short)."""
    root = tempfile.mkdtemp(prefix="agentrl-dk-")
    os.mkdir(f"{root}/run")
    os.mkdir(f"{root}/home")
    monkeypatch.setattr(docker_backend, "_RUN", f"{root}/run")
    monkeypatch.setattr(docker_backend, "_HOME", f"{root}/home")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _local(argv: list[str]) -> list[str]:
    return [sys.executable if a == "python3" else a for a in argv]


class FakeAPI:
    """The engine's HTTP API as docker-py's models call it, holding containers in a dict and running their
    processes here."""

    _version = "1.45"

    def __init__(self, fail_start: bool = False):
        self.containers_by_id: dict[str, dict] = {}
        self.created: list[dict] = []
        self.fail_start = fail_start
        self.execs: list[dict] = []
        self.zygotes: dict[str, subprocess.Popen] = {}
        self._held: list = []

    def create_container(self, **kwargs):
        self.created.append(kwargs)
        cid = f"c{len(self.created)}"
        labels = kwargs.get("labels") or {}
        self.containers_by_id[cid] = {"Id": cid, "Name": "/" + kwargs["name"], "Config": {"Labels": labels}}
        return {"Id": cid}

    def inspect_container(self, cid):
        if cid not in self.containers_by_id:
            raise docker.errors.NotFound(f"no container {cid}")
        return self.containers_by_id[cid]

    def start(self, cid, *args, **kwargs):
        if self.fail_start:
            raise docker.errors.APIError("OCI runtime create failed: runtime 'runsc' not found")
        command = self.containers_by_id[cid].get("command") or self.created[int(cid[1:]) - 1]["command"]
        # the zygote is its container's init: orphans come back to it (a child subreaper here)
        self.zygotes[cid] = subprocess.Popen([sys.executable, "-c", _SUBREAPER, *_local(command)])

    def remove_container(self, cid, **kwargs):
        assert kwargs.get("force") is True
        self.containers_by_id.pop(cid, None)
        zygote = self.zygotes.pop(cid, None)
        if zygote is not None:  # the container goes with every process in it
            _kernel._kill_tree(zygote.pid)
            zygote.wait()

    def containers(self, all=False, filters=None, **kwargs):
        wanted = (filters or {}).get("label")
        return [
            {"Id": c} for c, a in self.containers_by_id.items() if wanted is None or wanted in a["Config"]["Labels"]
        ]

    def exec_create(self, *args, **kwargs):
        call = inspect.signature(ExecApiMixin.exec_create).bind(self, *args, **kwargs).arguments
        assert call["container"] in self.zygotes, "exec in a container that does not run"
        self.execs.append({"cmd": call["cmd"], "kwargs": call, "stdin": bytearray(), "proc": None})
        return {"Id": f"e{len(self.execs)}"}

    def exec_start(self, *args, **kwargs):
        call = inspect.signature(ExecApiMixin.exec_start).bind(self, *args, **kwargs).arguments
        ex = self.execs[int(call["exec_id"]["Id"][1:]) - 1]
        if call.get("detach"):
            ex["proc"] = subprocess.Popen(_local(ex["cmd"]), stdin=subprocess.DEVNULL)
            return b""
        assert call.get("socket") and ex["kwargs"].get("stdin") and not ex["kwargs"].get("tty")
        host, far = socket.socketpair()
        proc = ex["proc"] = subprocess.Popen(_local(ex["cmd"]), stdin=subprocess.PIPE, stdout=subprocess.PIPE)

        def to_stdin():  # dockerd closes the exec's stdin when the client's stream ends
            try:
                while data := far.recv(1 << 16):
                    ex["stdin"] += data
                    proc.stdin.write(data)
                    proc.stdin.flush()
            except OSError:
                pass
            try:
                proc.stdin.close()
            except OSError:
                pass

        def from_stdout():  # Docker's stream format: 8-byte header (stream 1, length), then the bytes
            while data := os.read(proc.stdout.fileno(), 1 << 16):
                try:
                    far.sendall(bytes([1, 0, 0, 0]) + struct.pack(">I", len(data)) + data)
                except OSError:
                    break
            try:
                far.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        for target in (to_stdin, from_stdout):
            threading.Thread(target=target, daemon=True).start()
        # docker-py hands out the socket while its response still holds it through a file object
        self._held.append(host.makefile("rb"))
        return types.SimpleNamespace(_sock=host)

    def logs(self, cid, **kwargs):
        return b""

    def argv(self) -> list[list[str]]:
        """Every command line the backend had the engine run."""
        return [c["command"] for c in self.created] + [e["cmd"] for e in self.execs]


class FakeClient:
    def __init__(self, api: FakeAPI):
        self.api = api
        self.containers = ContainerCollection(client=self)

    def ping(self):
        return True


def test_the_container_is_labelled_locked_down_capped_and_removed_on_close():
    api = FakeAPI()
    sandbox = DockerSandbox(client=FakeClient(api), runtime="runsc")
    (created,) = api.created
    host = created["host_config"]  # built by docker-py's HostConfig: an unknown keyword would have raised
    labels = created["labels"]
    assert labels[OWNER_PID] == str(os.getpid()) and labels[OWNER_HOST] == socket.gethostname() and labels[LABEL]
    assert created["name"] == f"agentrl-sandbox-{labels[LABEL][:12]}"
    assert host["AutoRemove"] is True and host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["Ulimits"] == [{"Name": "core", "Soft": 0, "Hard": 0}]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}}
    assert host["Runtime"] == "runsc" and host["CapDrop"] == ["ALL"] and host["PidsLimit"] > 0
    assert list(api.containers_by_id) == ["c1"]
    sandbox.close()
    assert api.containers_by_id == {}


def test_a_container_that_fails_to_start_is_removed_and_the_error_says_why():
    api = FakeAPI(fail_start=True)
    with pytest.raises(AgentRLError, match="did not start.*runsc"):
        DockerSandbox(client=FakeClient(api), runtime="runsc")
    assert len(api.created) == 1 and api.containers_by_id == {}


def test_orphans_of_dead_owners_are_removed_and_live_ones_kept():
    api = FakeAPI()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    for name, pid, owner_host in (("orphan", dead.stdout.strip(), host), ("mine", str(os.getpid()), host),
                                  ("other-host", dead.stdout.strip(), "elsewhere")):  # fmt: skip
        api.create_container(name=name, labels={LABEL: name, OWNER_PID: pid, OWNER_HOST: owner_host})
    api.create_container(name="not-ours", labels={"app": "db"})
    assert remove_orphans(FakeClient(api)) == ["orphan"]
    assert sorted(a["Name"] for a in api.containers_by_id.values()) == ["/mine", "/not-ours", "/other-host"]


def test_a_new_sandbox_sweeps_orphans_first():
    api = FakeAPI()
    api.create_container(name="orphan", labels={LABEL: "x", OWNER_PID: "0", OWNER_HOST: socket.gethostname()})
    with DockerSandbox(client=FakeClient(api)):
        assert [a["Name"] for a in api.containers_by_id.values()] == ["/" + api.created[1]["name"]]
    assert api.containers_by_id == {}


def test_sandbox_gc_removes_orphans_and_says_how_many(monkeypatch):
    from typer.testing import CliRunner

    from agentrl.cli import app

    api = FakeAPI()
    api.create_container(name="orphan", labels={LABEL: "x", OWNER_PID: "0", OWNER_HOST: socket.gethostname()})
    monkeypatch.setattr(docker, "from_env", lambda: FakeClient(api))
    result = CliRunner().invoke(app, ["sandbox", "gc"])
    assert result.exit_code == 0 and "removed 1 orphaned sandbox container(s): orphan" in result.output
    assert api.containers_by_id == {}


@pytest.fixture
def api():
    fake = FakeAPI()
    yield fake
    for cid in list(fake.zygotes):  # whatever a failed test left
        fake.remove_container(cid, force=True)
    for ex in fake.execs:
        if ex["proc"] is not None and ex["proc"].poll() is None:
            ex["proc"].kill()
            ex["proc"].wait()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the seccomp filter is written for x86_64 only")
def test_the_kernel_installs_the_project_seccomp_filter_on_top_of_dockers_profile(api):
    with DockerSandbox(client=FakeClient(api)) as sb:
        (created,) = api.created
        # no profile through the engine: one would replace Docker's default allowlist instead of adding to it
        assert created["host_config"]["SecurityOpt"] == ["no-new-privileges"]
        spec = f"x86_64:{base64.b64encode(program()).decode()}"
        for argv in api.argv():  # the zygote and every exec of the kernel install it before anything else
            assert argv[argv.index("--seccomp") + 1] == spec, argv[5:7]
        assert sb.seccomp is True
        s = sb.session()
        r = s.run("import os\nos.kill(-1, 0)")
        assert r.error is not None and r.error.name == "PermissionError"
        r = s.run("[l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')]")
        assert r.result == "['2']"
        # the docker-only paths (the zygote's socket, relays, a fork's own socket) all run under the filter
        assert s.run("x = 6 * 7\nx").result == "42"
        assert s.fork().run("x + 1").result == "43"
        assert s.run("import subprocess\nsubprocess.run(['true']).returncode").result == "0"


def test_large_files_travel_through_the_zygote_socket_not_the_command_line(api):
    big = os.urandom(6 << 20)
    limits = Limits(files={"data/big.bin": big, "note.txt": "hello"})
    with DockerSandbox(limits, client=FakeClient(api)) as sb:
        # the engine ran every command line through execve: none was too long, and none carries the files
        assert api.argv() and all(len(arg.encode()) < MAX_ARG_STRLEN for argv in api.argv() for arg in argv)
        assert sum(len(arg) for arg in api.created[0]["command"]) < 64 << 10
        config_exec = api.execs[0]  # where the zygote reads its config: the first connection to its socket
        assert config_exec["cmd"][5:7] == ["--attach", f"{docker_backend._RUN}/zygote.sock"]
        assert len(config_exec["stdin"]) > len(big) and b'"op":"config"' in config_exec["stdin"][:64]
        s = sb.session()
        r = s.run(
            "import hashlib\nhashlib.sha256(open('data/big.bin', 'rb').read()).hexdigest(), open('note.txt').read()"
        )
        assert r.result == repr((hashlib.sha256(big).hexdigest(), "hello"))


def test_a_failed_preload_is_a_clear_error_and_removes_the_container(api):
    with pytest.raises(AgentRLError, match="preloading modules in the sandbox failed: no_such_module_here"):
        DockerSandbox(Limits(preload=("no_such_module_here",)), client=FakeClient(api))
    assert api.containers_by_id == {} and api.zygotes == {}


def test_closing_a_session_ends_its_kernel_and_relay_but_not_its_fork(api):
    with DockerSandbox(client=FakeClient(api)) as sb:
        s = sb.session()
        s.run("x = 1")
        kernel = int(s.run("import os\nos.getpid()").result)  # a successful cell's process is the kernel now
        relay = api.execs[-1]["proc"]
        f = s.fork()
        os.kill(kernel, signal.SIGSTOP)  # a kernel that cannot act on "close" itself (wedged, or stopped by a stray)
        s.close()
        assert relay.wait(10) == 0
        assert wait_until(lambda: not alive(kernel))
        assert f.run("x + 1").result == "2"
        f.close()


def test_a_kernel_the_host_gives_up_on_is_killed_with_its_cell(api):
    """A cell stops its own kernel: the host's last-resort clock gives up on the session, and the
    kernel and the cell go, not only the host's end of the stream."""
    with DockerSandbox(client=FakeClient(api)) as sb:
        s = sb.session()
        first = s.pid
        relay = api.execs[-1]["proc"]
        code = (
            "import os, signal, time\nopen('cell.pid', 'w').write(str(os.getpid()))\n"
            "os.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(60)"
        )
        r = s.run(code, timeout=0.3)
        assert r.timed_out and r.error.name == "SandboxCrash"
        cell = int(open(f"{s.workdir}/cell.pid").read())
        assert relay.wait(10) == 0
        assert wait_until(lambda: not alive(first) and not alive(cell)), (first, cell)
        reaps = [e["cmd"] for e in api.execs if "--reap" in e["cmd"]]
        assert [c[c.index("--reap") + 1] for c in reaps] == [str(first)]
        assert s.run("2 + 2").result == "4"  # a fresh kernel


def test_a_fork_whose_kernel_does_not_answer_is_a_clear_error(api, monkeypatch):
    monkeypatch.setattr(docker_backend, "_FORK_TIMEOUT_S", 0.5)
    with DockerSandbox(client=FakeClient(api)) as sb:
        s = sb.session()
        stuck = s.pid
        os.kill(stuck, signal.SIGSTOP)
        with pytest.raises(AgentRLError, match="forking the sandbox session failed: TimeoutError"):
            s.fork()
        assert wait_until(lambda: not alive(stuck))  # its relay and a reap killed it
        assert s.run("1 + 1").result == "2"  # the session goes on with a fresh kernel
        os.kill(int(s.run("import os\nos.getpid()").result), signal.SIGKILL)
        with pytest.raises(AgentRLError, match="forking the sandbox session failed: its kernel did not answer"):
            s.fork()
        assert s.fork().run("3").result == "3"
