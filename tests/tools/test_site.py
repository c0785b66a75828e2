"""The task's site server: generated pages and static folders on 127.0.0.1, and the host check."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from agentrl.tools.site import Site, serve_site


def fetch(url: str, method: str = "GET") -> tuple[int, str, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, "", ""


def test_generated_pages_are_served_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_text("do not serve the working directory")
    with serve_site(pages={"/": "<h1>home</h1>", "wiki/1": "<p>one</p>", "/app.js": "x = 1"}) as site:
        assert fetch(site.url("/")) == (200, "text/html; charset=utf-8", "<h1>home</h1>")
        assert fetch(site.url("wiki/1"))[2] == "<p>one</p>"
        assert fetch(site.url("/app.js"))[1].startswith("text/javascript")
        assert fetch(site.url("/wiki/1?q=2"))[2] == "<p>one</p>"  # the query string is the page's business
        assert fetch(site.url("/secret.txt"))[0] == fetch(site.url("/secret.txt"), "HEAD")[0] == 404


def test_a_static_folder_is_served(tmp_path):
    (tmp_path / "index.html").write_text("<h1>shop</h1>")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mugs.html").write_text("<p>mugs</p>")
    with serve_site(folder=tmp_path) as site:
        assert fetch(site.url("/"))[2] == "<h1>shop</h1>"
        assert fetch(site.url("/c/mugs.html"))[2] == "<p>mugs</p>"
        assert fetch(site.url("/../../etc/passwd"))[0] == 404
    with pytest.raises(OSError):
        fetch(site.url("/"))  # stopped with the block


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8123/wiki/1", True),
        ("http://127.0.0.1:8123", True),
        ("http://127.0.0.1:8124/", False),
        ("http://localhost:8123/", False),
        ("https://127.0.0.1:8123/", False),
        ("http://127.0.0.1:8123@example.com/", False),
        ("http://example.com/?u=http://127.0.0.1:8123/", False),
        ("file:///etc/passwd", False),
        ("about:blank", False),
        ("http://127.0.0.1:99999/", False),
    ],
)
def test_only_the_site_itself_is_allowed(url, allowed):
    assert Site(8123).allows(url) is allowed


def test_paths_resolve_against_the_site_root():
    site = Site(8123)
    assert site.url("/wiki/3") == site.url("wiki/3") == "http://127.0.0.1:8123/wiki/3"
    assert site.url("http://example.com/x") == "http://example.com/x"  # absolute URLs are kept, then checked
