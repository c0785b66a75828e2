"""A task's own web site, served on 127.0.0.1 at a free port for the length of a run.

The site is a static folder of the task, or pages a task generates (`{path: html}`). It is the only place the
browser tool may go: `Site.allows(url)` is the host check the browser applies to every request.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlsplit

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Site:
    port: int

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, url_or_path: str) -> str:
        """An absolute URL: a path (`/wiki/3`, `wiki/3`) is taken relative to the site's root."""
        return urljoin(self.origin + "/", url_or_path.strip())

    def allows(self, url: str) -> bool:
        """Only http on this site's host and port; other hosts, other local ports and other schemes are refused."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            return False
        return parts.scheme == "http" and parts.hostname == HOST and port == self.port


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves a folder; a `pages` mapping, when given, is served first (generated sites need no files)."""

    pages: Mapping[str, bytes] = {}
    has_folder = False
    """Without a folder, a path not in `pages` is a 404 (the stdlib would serve the working directory)."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's signature)
        pass

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        path = urlsplit(self.path).path
        body = self.pages.get(path)
        if body is None and path.endswith("/"):
            body = self.pages.get(path + "index.html")
        if body is None:
            if not self.has_folder:
                self.send_error(404, "no such page")
            elif head:
                super().do_HEAD()
            else:
                super().do_GET()
            return
        kind = mimetypes.guess_type(path)[0] if "." in path.rsplit("/", 1)[-1] else None
        self.send_response(200)
        self.send_header("Content-Type", f"{kind or 'text/html'}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


@contextmanager
def serve_site(folder: Path | None = None, pages: Mapping[str, str | bytes] | None = None) -> Iterator[Site]:
    """Serve `folder` and/or generated `pages` on 127.0.0.1 at a free port until the block exits."""
    encoded = {
        ("" if path.startswith("/") else "/") + path: body if isinstance(body, bytes) else body.encode()
        for path, body in (pages or {}).items()
    }
    handler = type("SiteHandler", (_QuietHandler,), {"pages": encoded, "has_folder": folder is not None})
    server = ThreadingHTTPServer((HOST, 0), partial(handler, directory=str(folder) if folder else None))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="agentrl-site", daemon=True)
    thread.start()
    try:
        yield Site(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
