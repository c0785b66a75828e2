"""url_allowlist: the host a browser would actually visit, through the usual URL tricks."""

from __future__ import annotations

import pytest

from .rule_helpers import checker, pre

LOCAL = checker("url_allowlist", allow=["127.0.0.1", "localhost", "*.shop.test"])


def blocked(url: str) -> bool:
    return LOCAL.check(pre("browser", {"action": "open", "url": url})) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/",
        "http://127.0.0.1.evil.com/",
        "http://localhost@evil.com/",
        "http://127.0.0.1@evil.com:8000/",
        "//evil.com/x",
        "evil.com/x",
        "HTTP://EVIL.COM/",
        "http://evil.com\\@127.0.0.1/",
        "file:///etc/passwd",
        "javascript:fetch('//evil.com')",
        "http://shop.test.evil.com/",
    ],
)
def test_outside_hosts_and_schemes_are_refused(url):
    assert blocked(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/cart",
        "HTTP://LOCALHOST:8000/",
        "localhost:8000/product/3",
        "http://localhost./x",
        "/cart",
        "?q=1",
        "http://127.0.0.1:8000/search?q=https://evil.com/",
        "https://www.shop.test/deals",
        "http://2130706433/",  # 127.0.0.1, as a browser reads it
    ],
)
def test_allowed_hosts_and_relative_urls_pass(url):
    assert not blocked(url)


def test_span_and_message_name_the_host():
    finding = LOCAL.check(pre("browser", {"url": "http://localhost@evil.com/"}))
    assert finding.rule == "host evil.com is not allowed" and finding.span == "http://localhost@evil.com/"


def test_other_tools_and_missing_arguments_are_not_checked():
    assert LOCAL.check(pre("search", {"url": "https://evil.com"})) is None
    assert LOCAL.check(pre("browser", {"action": "click", "ref": "e3"})) is None
    strict = checker("url_allowlist", allow=["localhost"], allow_relative=False)
    assert strict.check(pre("browser", {"url": "/cart"})) is not None
