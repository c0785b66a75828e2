"""A local test site and one Chromium for the module's browser tests (skipped where Chromium is absent)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from agentrl.tools.chromium import CHROMIUM
from agentrl.tools.site import HOST, Site, _QuietHandler

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}")

PAGES = {
    "/": (
        "<h1>Home</h1><p>Go to <a href='/a'>Page A</a> or <a href='http://example.com/'>Elsewhere</a>.</p>"
        "<p><a href='/away'>Moved</a> <a href='/hop'>Hop</a> <a href='/script'>Script</a></p>"
        "<form action='/search'><input name='q' placeholder='Search'><button>Go</button></form>"
    ),
    "/a": "<h1>Page A</h1><p>Capital: <a href='/'>Home</a></p><p hidden>secret</p>",
    "/search": "<h1>Results</h1><p id='q'></p><script>q.textContent = 'for ' + location.search.slice(3)</script>",
    "/script": "<h1>Leaving</h1><script>location.href = 'http://example.org/x'</script>",
    "/storage": (
        "<p id='s'></p><button onclick=\"localStorage.x='L'; sessionStorage.y='S'; document.cookie='c=C'; "
        "location.reload()\">Store</button><script>s.textContent = 'local=' + (localStorage.x || '-') + "
        "' session=' + (sessionStorage.y || '-') + ' cookie=' + (document.cookie || '-')</script>"
    ),
}
REDIRECTS = {"/away": "http://example.com/moved", "/hop": "/a"}


class TestSiteHandler(_QuietHandler):
    pages = {path: html.encode() for path, html in PAGES.items()}

    def do_GET(self) -> None:
        target = REDIRECTS.get(self.path)
        if target is None:
            super().do_GET()
            return
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer((HOST, 0), TestSiteHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def worker():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from agentrl.tools.chromium import BrowserWorker

    with BrowserWorker() as w:
        yield w
