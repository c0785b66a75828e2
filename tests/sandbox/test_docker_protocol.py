"""The docker backend's transport, checked without an engine: the kernel's listen and relay modes,
and the demultiplexing of `docker exec` output."""

import json
import socket
import struct
import subprocess
import sys

from agentrl.sandbox import _kernel
from agentrl.sandbox.docker import _ExecChannel
from agentrl.sandbox.local import KERNEL_PATH

CFG = {
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


def _attach(path: str) -> tuple[socket.socket, subprocess.Popen]:
    host, box = socket.socketpair()
    relay = subprocess.Popen([sys.executable, "-I", "-S", str(KERNEL_PATH), "--attach", path], stdin=box, stdout=box)
    box.close()
    host.settimeout(10)
    return host, relay


def test_listen_relay_and_fork(tmp_path):
    zsock = str(tmp_path / "z.sock")
    zygote = subprocess.Popen([sys.executable, "-I", "-S", str(KERNEL_PATH), "--listen", zsock, json.dumps(CFG)])
    procs = [zygote]
    try:
        chan, relay = _attach(zsock)
        procs.append(relay)
        _kernel.send(chan, {"op": "new", "uid": None, "workdir": str(tmp_path / "s1"), "copy_files": True})
        assert _kernel.recv(chan)[0]["ready"]
        _kernel.send(chan, {"op": "run", "code": "x = 1\nopen('in.txt').read()", "timeout": 5})
        assert _kernel.recv(chan)[0]["result"] == "'hi'"

        fsock = str(tmp_path / "f.sock")
        _kernel.send(chan, {"op": "fork", "workdir": str(tmp_path / "s2"), "listen": fsock})
        assert _kernel.recv(chan)[0]["ok"]
        fchan, frelay = _attach(fsock)
        procs.append(frelay)
        assert _kernel.recv(fchan)[0]["ready"]
        _kernel.send(fchan, {"op": "run", "code": "x += 1\nx", "timeout": 5})
        assert _kernel.recv(fchan)[0]["result"] == "2"
        _kernel.send(chan, {"op": "run", "code": "x", "timeout": 5})
        assert _kernel.recv(chan)[0]["result"] == "1"
        for c in (chan, fchan):
            _kernel.send(c, {"op": "close"})
            c.close()
    finally:
        for p in procs:
            p.kill()
            p.wait()


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
