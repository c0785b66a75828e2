"""Where a URL leads, read as a browser reads it: the WHATWG URL standard, by ada (the parser in Node.js).

ada does the standard's work: backslashes and any number of slashes after the scheme, tabs and newlines
dropped, percent-encoded and IDNA hosts (fullwidth dots, unicode to punycode), IPv4 in decimal, hex, octal and
short forms, userinfo before `@`. What is left here is what the standard leaves to the caller: a relative URL
resolves against the current page, and an address-bar input (`evil.com/x`, `localhost:8000`) means http.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ada_url import URL

C0_OR_SPACE = "".join(map(chr, range(0x21)))
TAB_OR_NEWLINE = re.compile("[\t\n\r]")
HOST_PORT = re.compile(r"^[\w.-]+:\d+([/\\?#]|$)")
RELATIVE_START = ("/", "\\", "?", "#", ".")
# Two stand-ins for the current page: a URL that names its own host resolves to that host against both.
BASES = ("http://a.invalid/", "http://b.invalid/")


@dataclass(frozen=True)
class Target:
    """The scheme (without `:`) and host a URL opens; host None for a hostless URL (`javascript:`, `file:///x`)."""

    scheme: str
    host: str | None


RELATIVE = Target("", None)
"""A URL relative to the current page (`/cart`, `?q=1`): it stays on the current site."""


def url_target(url: str) -> Target | None:
    """Where `url` leads: a Target, RELATIVE, or None when a browser would not parse it."""
    text = TAB_OR_NEWLINE.sub("", url.strip(C0_OR_SPACE))
    if HOST_PORT.match(text):  # "localhost:8000/x" would parse with the scheme "localhost"
        text = "http://" + text
    if (absolute := _parse(text)) is not None:
        return absolute
    resolved = [_parse(text, base) for base in BASES]
    if None in resolved:
        return None
    if resolved[0].host == resolved[1].host:  # the URL names its own host: `//evil.com`, `\\evil.com`
        return Target("", resolved[0].host)
    if not text or text.startswith(RELATIVE_START):
        return RELATIVE
    return _parse("http://" + text)  # `evil.com/x`, as typed into an address bar


def canonical_host(host: str) -> str | None:
    """A host as the parser writes it (lower case, punycode, dotted IPv4, `[v6]`); None if it is not one."""
    for text in (f"http://{host}/", f"http://[{host}]/"):
        if (target := _parse(text)) is not None and target.host is not None:
            return target.host
    return None


def _parse(text: str, base: str | None = None) -> Target | None:
    try:
        url = URL(text, base)
    except ValueError:
        return None
    return Target(url.protocol.removesuffix(":"), url.hostname.rstrip(".") or None)  # `localhost.` is localhost
