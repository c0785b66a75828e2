"""A local stand-in for E2B that the real SDK (`e2b_code_interpreter`) talks to, for tests.

One HTTP server on a free localhost port answers what `agentrl.sandbox.e2b` asks of E2B, in the SDK's wire format:

- the API (``E2B_API_URL``): ``POST /v2/sandboxes`` (create), ``POST /sandboxes/{id}/timeout`` (set_timeout),
  ``DELETE /sandboxes/{id}`` (kill);
- the sandbox (``E2B_SANDBOX_URL``): envd's ``POST /files`` (files.write, multipart) and ``GET /health``, and the
  code interpreter's ``POST /contexts``, ``DELETE /contexts/{id}`` and ``POST /execute``, whose answer is NDJSON
  streamed line by line (``{"type": "stdout" | "stderr" | "result" | "error", ...}``).

Each code context is a Python process of its own (its own globals, working directory and cwd changes), that runs
cells as Jupyter does (the value of a final expression is the result) and streams stdout and stderr a line at a time
as the cell prints. Removing a context kills its process, which ends a running cell's stream. The sandbox's
``/home/user`` is a host folder (`root`): paths under it in cells, context cwds and uploaded files are mapped there.

The SDK's own cell timeout fires late whatever the server does: e2b 2.x's transport adds the read and write timeouts
into one deadline, twice the `timeout` asked for (e2b-dev/E2B issue 1881). `heartbeat` makes it later where the SDK's
timeout bounds idle reads instead: the server then sends a line the SDK ignores after each `heartbeat` seconds of a
silent cell, as a proxy's keep-alive would, so such a timeout never fires while the cell stalls.

Test-only: it runs the test's own trusted snippets, unsandboxed, on the host.
"""

from __future__ import annotations

import email.parser
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KERNEL = r"""
import ast, json, os, sys, time, traceback
chan = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # what children print to fd 1 does not garble the channel
def emit(**msg):
    chan.write(json.dumps(msg) + "\n")
    chan.flush()
class Stream:
    def __init__(self, name):
        self.name, self.buf = name, ""
    def write(self, s):
        self.buf += s
        if "\n" in self.buf:  # whole lines go out as they are printed
            head, _, self.buf = self.buf.rpartition("\n")
            emit(type=self.name, text=head + "\n", timestamp=time.time_ns())
        return len(s)
    def flush(self):
        if self.buf:
            emit(type=self.name, text=self.buf, timestamp=time.time_ns())
            self.buf = ""
sys.stdout, sys.stderr = Stream("stdout"), Stream("stderr")
ns = {"__name__": "__main__", "__builtins__": __builtins__}
os.chdir(json.loads(sys.stdin.readline()))  # the context's cwd, once it is given one
while True:
    try:
        line = sys.stdin.readline()
    except KeyboardInterrupt:  # an interrupt that came after its cell ended
        continue
    if not line:
        break
    try:
        tree = ast.parse(json.loads(line)["code"])
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), ns)
        value = None if last is None else eval(compile(ast.Expression(last.value), "<cell>", "eval"), ns)
        sys.stdout.flush(); sys.stderr.flush()
        if value is not None:
            emit(type="result", text=repr(value), is_main_result=True)
    except BaseException as e:
        sys.stdout.flush(); sys.stderr.flush()
        emit(type="error", name=type(e).__name__, value=str(e), traceback=traceback.format_exc())
    emit(type="end")
"""


class Context:
    """A kernel process; its channel's lines land in `lines` (None when it ended). It starts ahead of need and runs
    cells once `start` gives it its cwd, so that a context comes at once (as a rollback needs)."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", KERNEL],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.lock = threading.Lock()  # one cell at a time, as a Jupyter kernel queues them
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def start(self, cwd: str) -> Context:
        self._write(cwd)
        return self

    def send(self, code: str) -> None:
        self._write({"code": code})

    def _write(self, msg: object) -> None:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class FakeE2B(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: str, heartbeat: float | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.heartbeat = heartbeat
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.contexts: dict[str, Context] = {}
        self.spare = Context()
        self.lock = threading.Lock()  # guards the spare
        self.ids = itertools.count(1)
        self.created: list[dict] = []  # bodies of the sandbox-create calls
        self.timeouts: list[int] = []  # set_timeout calls
        self.killed: list[str] = []  # sandboxes killed
        self.executed: list[str] = []  # every cell run, in order
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def local(self, text: str) -> str:
        """`text` (a path, a cell) with the sandbox's /home/user put where it lies on the host."""
        return re.sub(r"/home/user\b", lambda _: self.root, text)

    def close(self) -> None:
        self.shutdown()
        for ctx in [self.spare, *self.contexts.values()]:
            ctx.kill()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # lines go out as they come
    server: FakeE2B

    def log_message(self, *args) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            data = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _send(self, status: int, body: object = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(204 if self.path == "/health" else 404)

    def do_DELETE(self) -> None:
        s = self.server
        if m := re.fullmatch(r"/sandboxes/([^/]+)", self.path):
            s.killed.append(m[1])
            return self._send(204)
        ctx = s.contexts.pop(self.path.removeprefix("/contexts/"), None)
        if ctx is None:
            return self._send(404, {"message": "context not found"})
        ctx.kill()
        self._send(204)

    def do_POST(self) -> None:
        s, url, body = self.server, urlparse(self.path), self._body()
        if url.path == "/v2/sandboxes":
            s.created.append(json.loads(body))
            return self._send(
                201, {"templateID": "fake", "sandboxID": "fake-sbx", "clientID": "fake", "envdVersion": "0.5.7"}
            )
        if re.fullmatch(r"/sandboxes/[^/]+/timeout", url.path):
            s.timeouts.append(json.loads(body)["timeout"])
            return self._send(204)
        if url.path == "/files":
            path = s.local(parse_qs(url.query)["path"][0])
            msg = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
            )
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(msg.get_payload()[0].get_payload(decode=True))
            return self._send(200, [{"name": os.path.basename(path), "type": "file", "path": path}])
        if url.path == "/contexts":
            req = json.loads(body)
            cwd = req.get("cwd", "/home/user")
            os.makedirs(s.local(cwd), exist_ok=True)
            cid = f"ctx{next(s.ids)}"
            with s.lock:
                ctx, s.spare = s.spare, Context()
            s.contexts[cid] = ctx.start(s.local(cwd))
            return self._send(200, {"id": cid, "language": req.get("language", "python"), "cwd": cwd})
        if url.path == "/execute":
            return self._execute(json.loads(body))
        self._send(404)

    def _execute(self, req: dict) -> None:
        s = self.server
        ctx = s.contexts.get(req.get("context_id"))
        if ctx is None:
            return self._send(404, {"message": f"context {req.get('context_id')} not found"})
        with ctx.lock:
            code = s.local(req["code"])
            s.executed.append(req["code"])
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                ctx.send(code)
            except OSError:
                pass  # the context is being removed: its channel ends with None
            live = True  # the client still reads
            while True:
                try:
                    line = ctx.lines.get(timeout=s.heartbeat)
                except queue.Empty:
                    line = _line(type="heartbeat")
                if line is not None and json.loads(line)["type"] == "end":
                    break
                if live:
                    try:
                        self._chunk(
                            line or _line(type="error", name="KernelDied", value="the kernel ended", traceback="")
                        )
                    except OSError:  # the client hung up: interrupt the cell, as the real server does
                        live = False
                        ctx.proc.send_signal(signal.SIGINT)
                if line is None:  # the context was removed (or its process died) during the cell
                    break
            if live:
                try:
                    self._chunk("")
                except OSError:  # it hung up as the cell ended
                    live = False
            self.close_connection = not live

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _line(**msg) -> str:
    return json.dumps(msg) + "\n"
