"""url_allowlist reads URLs as browsers do (the WHATWG URL standard): slashes, backslashes, tabs and newlines,
percent-encoded, numeric and international hosts, userinfo, scheme-relative URLs; what does not parse is refused."""

from __future__ import annotations

import pytest
from ada_url import URL

from agentrl.guard.urls import RELATIVE, Target, url_target

from .rule_helpers import checker, pre

LOCAL = checker("url_allowlist", allow=["127.0.0.1", "localhost", "*.shop.test"])
NAMED = checker("url_allowlist", allow=["shop.test"])


def problem(check, url: str) -> str | None:
    finding = check.check(pre("browser", {"action": "open", "url": url}))
    return finding.rule if finding is not None else None


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http:////evil.com/", "evil.com"),
        ("https:\\\\evil.com\\x", "evil.com"),
        ("http:\\\\evil.com/x", "evil.com"),
        ("https:/\\evil.com", "evil.com"),
        ("http:///evil.com", "evil.com"),
        ("http:evil.com/x", "evil.com"),
    ],
)
def test_any_slashes_after_the_scheme_lead_to_the_host(url, host):
    assert problem(LOCAL, url) == f"host {host} is not allowed"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("ht\ttp://evil.com/", "evil.com"),
        ("http://ev\nil.com/", "evil.com"),
        ("http://127.0.0.1\t.evil.com/", "127.0.0.1.evil.com"),
        ("http://local\r\nhost.evil.com/", "localhost.evil.com"),
        ("\n//evil.com/x", "evil.com"),
        ("  http://evil.com/  ", "evil.com"),
        ("\x00http://evil.com/", "evil.com"),
    ],
)
def test_tabs_newlines_and_surrounding_controls_are_dropped(url, host):
    assert problem(LOCAL, url) == f"host {host} is not allowed"


def test_a_scheme_split_by_a_newline_is_still_the_scheme():
    assert problem(LOCAL, "java\nscript:alert(document.cookie)") == "scheme javascript: is not allowed"
    assert problem(LOCAL, "http://local\nhost:8000/cart") is None


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://%65vil.com/", "evil.com"),
        ("http://evil%2Ecom/", "evil.com"),
        ("http://127.0.0.1%2Eevil.com/", "127.0.0.1.evil.com"),
        ("http://%6c%6f%63%61%6c%68%6f%73%74.evil.com/", "localhost.evil.com"),
        ("http://ev%69l.com/x", "evil.com"),
        ("http://shop.test%2Eevil.com/", "shop.test.evil.com"),
    ],
)
def test_percent_encoded_hosts_are_decoded(url, host):
    assert problem(LOCAL, url) == f"host {host} is not allowed"


def test_a_percent_encoded_allowed_host_is_allowed():
    assert problem(LOCAL, "http://%6c%6f%63%61%6c%68%6f%73%74:8000/") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://0x7f000001:8000/",
        "http://127.1/",
        "http://0x7F.0.0.0x1/",
    ],
)
def test_ipv4_in_every_form_is_the_address(url):
    assert problem(LOCAL, url) is None
    assert problem(NAMED, url) == "host 127.0.0.1 is not allowed"


@pytest.mark.parametrize(
    "url",
    [
        "http://0xA9.0xFE.0xA9.0xFE/latest/meta-data/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
        "http://2852039166/",
        "http://169.254.169.254./",
    ],
)
def test_other_addresses_are_refused_by_their_dotted_form(url):
    assert problem(LOCAL, url) == "host 169.254.169.254 is not allowed"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://ÉVIL.com/", "xn--vil-9la.com"),
        ("http://evil。com/", "evil.com"),
        ("http://ｅｖｉｌ.com/", "evil.com"),
        ("http://localhost。evil.com/", "localhost.evil.com"),
        ("http://shop．test.evil.com/", "shop.test.evil.com"),
        ("http://lоcalhost/", "xn--lcalhost-nbh"),  # a Cyrillic о
        ("http://evil\u200b.com/", "evil.com"),  # a zero-width space, mapped away
    ],
)
def test_international_hosts_are_read_as_punycode(url, host):
    assert problem(LOCAL, url) == f"host {host} is not allowed"


def test_international_forms_of_allowed_hosts_are_allowed():
    assert problem(LOCAL, "http://ｌｏｃａｌｈｏｓｔ:8000/") is None
    assert problem(LOCAL, "http://127。0。0。1/") is None
    books = checker("url_allowlist", allow=["Bücher.example"])
    assert problem(books, "http://xn--bcher-kva.example/") is None
    assert problem(books, "http://BÜCHER.example/") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost@evil.com/",
        "http://127.0.0.1:8000@evil.com/",
        "http://user:pass@evil.com/",
        "http://a@b@evil.com/",
        "http://evil.com#@127.0.0.1/",
        "http://evil.com?@127.0.0.1/",
        "http://evil.com\\@127.0.0.1/",
    ],
)
def test_userinfo_never_names_the_host(url):
    assert problem(LOCAL, url) == "host evil.com is not allowed"


def test_an_allowed_host_behind_userinfo_is_allowed():
    assert problem(LOCAL, "http://evil.com@127.0.0.1:8000/") is None


@pytest.mark.parametrize(
    "url",
    ["//evil.com", "///evil.com/x", "\\\\evil.com\\x", "/\\evil.com", " //evil.com", "\t//evil.com/x"],
)
def test_scheme_relative_urls_lead_to_their_host(url):
    assert problem(LOCAL, url) == "host evil.com is not allowed"


@pytest.mark.parametrize("url", ["//localhost:8000/x", "//127.0.0.1/", "/cart", "./a", "../b", "?q=1", "#top", ""])
def test_scheme_relative_urls_to_allowed_hosts_and_relative_paths_pass(url):
    assert problem(LOCAL, url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://exa mple.com/",
        "http://",
        "http://[::1/",
        "http://evil.com:99999/",
        "https://%zz/",
        "http://127.0.0.1%40evil.com/",
        "http://256.0.0.1/",
    ],
)
def test_urls_a_browser_would_not_parse_are_refused(url):
    assert problem(LOCAL, url) == f"URL {url!r} does not parse"


@pytest.mark.parametrize(
    "url",
    [
        "http:////Evil.COM/",
        "https:\\\\evil.com\\x",
        "http://%65vil.com/",
        "http://0x7f.1/",
        "http://ÉVIL.com./",
        "http://evil。com/",
        "http://a@b@127.0.0.1:8000/",
        "ht\ttp://ev\nil.com/",
        "http://[::1]:8000/",
    ],
)
def test_scheme_and_host_are_those_the_reference_parser_gives(url):
    reference = URL(url)
    assert url_target(url) == Target(reference.protocol.removesuffix(":"), reference.hostname.rstrip("."))


def test_relative_and_hostless_targets():
    assert url_target("/cart") == RELATIVE and url_target("?q=1") == RELATIVE
    assert url_target("javascript:alert(1)") == Target("javascript", None)
    assert url_target("file:///etc/passwd") == Target("file", None)


def test_allowed_hosts_are_validated_and_written_as_the_parser_writes_them():
    assert checker("url_allowlist", allow=["LOCALHOST.", "0x7f.1", "*.Shop.Test"]).settings.allow == [
        "localhost",
        "127.0.0.1",
        "*.shop.test",
    ]
    with pytest.raises(ValueError, match="is not a host"):
        checker("url_allowlist", allow=["exa mple.com"])
