"""The browser tool on a local site: actions, refs, the host fence, contexts, threads and replay."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from agentrl.tools.browser import BrowserTool, element_label

from .conftest import needs_chromium

pytestmark = needs_chromium


@pytest.fixture()
def tool(worker, site):
    return BrowserTool(worker, site, timeout=20, max_chars=400)


@pytest.fixture()
def state(tool):
    s = tool.open_state()
    yield s
    s.close()


def test_open_read_click_and_type(tool, state):
    home = tool.run({"action": "open", "url": "/"}, state)
    assert home.error is None
    assert home.output.splitlines()[:2] == ["Home", "Go to [1] Page A or [2] Elsewhere ."]
    assert '[6] textbox "Search" [7] button "Go"' in home.output
    page_a = tool.run({"action": "click", "ref": 1}, state)
    assert page_a.output == "Page A\nCapital: [1] Home"  # hidden text is not shown
    assert tool.run({"action": "read"}, state).output == page_a.output
    tool.run({"action": "click", "ref": "[1]"}, state)  # back home; refs as "[1]" work too
    typed = tool.run({"action": "type", "ref": 6, "text": "mugs"}, state)
    assert '[6] textbox "Search" = "mugs"' in typed.output
    results = tool.run({"action": "type", "ref": 6, "text": "cups", "submit": True}, state)
    assert results.output == "Results\nfor cups"


def test_bad_arguments_say_what_to_do(tool, state):
    assert tool.run({"action": "read"}, state).error == "bad_arguments"  # nothing open yet
    assert tool.run({"action": "fly"}, state).error == "bad_arguments"
    assert tool.run({"action": "click"}, state).error == "bad_arguments"
    tool.run({"action": "open", "url": "/a"}, state)
    missing = tool.run({"action": "click", "ref": 9}, state)
    assert missing.error == "bad_arguments" and "no element [9]" in missing.output


@pytest.mark.parametrize("url", ["http://example.com/", "https://127.0.0.1/", "file:///etc/passwd", "about:blank"])
def test_opening_another_host_is_refused(tool, state, site, url):
    result = tool.run({"action": "open", "url": url}, state)
    assert result.error == "refused_host" and "outside this site" in result.output
    assert state.lease is None  # refused before anything was opened


def test_another_local_port_is_refused(tool, state, site):
    result = tool.run({"action": "open", "url": f"http://127.0.0.1:{site.port + 1}/"}, state)
    assert result.error == "refused_host"


@pytest.mark.parametrize(
    ("ref", "where"), [(2, "http://example.com/"), (3, "http://example.com/moved"), (5, "http://example.org/x")]
)
def test_links_redirects_and_scripts_cannot_leave(tool, state, ref, where):
    """A link out, a server redirect out, and a page script that navigates out are all stopped."""
    tool.run({"action": "open", "url": "/"}, state)
    result = tool.run({"action": "click", "ref": ref}, state)
    assert result.error == "refused_host", result
    assert where in result.output
    assert state.refused == [where]


def test_a_redirect_inside_the_site_is_followed(tool, state):
    tool.run({"action": "open", "url": "/"}, state)
    assert tool.run({"action": "click", "ref": 4}, state).output.startswith("Page A")


def test_closing_a_state_recycles_its_context_wiped(tool, worker):
    """The next trajectory gets the same context with nothing left: no storage, no cookies, a blank page."""
    first = tool.open_state()
    assert first.lease is None  # opened lazily
    tool.run({"action": "open", "url": "/storage"}, first)
    stored = tool.run({"action": "click", "ref": 1}, first).output
    assert stored.startswith("local=L session=S cookie=c=C")
    context, page = first.lease.context, first.page
    first.close()
    assert first.lease is None and first not in worker.with_page and worker.spare[-1].context is context
    assert worker.spare[-1].page is page and page.url == "about:blank"  # the page (its renderer) stays
    second = tool.open_state()
    try:
        assert tool.run({"action": "read"}, second).error == "bad_arguments"  # blank: nothing is open
        assert second.lease.context is context and second.page is page and second in worker.with_page
        assert tool.run({"action": "open", "url": "/storage"}, second).output.startswith("local=- session=- cookie=-")
        assert worker.call(page.evaluate("history.length"), 5) == 2  # the blank page and this one: no more
    finally:
        second.close()


def test_without_recycling_a_closed_state_closes_its_context(tool, worker):
    worker.recycle = False
    try:
        state = tool.open_state()
        tool.run({"action": "open", "url": "/a"}, state)
        context = state.lease.context
        assert context in worker.browser.contexts
        state.close()
        state.close()  # twice is harmless
        assert context not in worker.browser.contexts
        assert state.lease is None and state not in worker.with_page
    finally:
        worker.recycle = True


def test_concurrent_trajectories_from_many_threads(tool, worker):
    """Each thread drives its own context; pages do not leak between them."""

    def episode(i: int) -> tuple[str, str]:
        state = tool.open_state()
        try:
            first = tool.run({"action": "open", "url": "/" if i % 2 else "/a"}, state).output
            tool.run({"action": "open", "url": f"/search?q=t{i}"}, state)
            return first.splitlines()[0], tool.run({"action": "read"}, state).output
        finally:
            state.close()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(episode, range(4)))
    assert results == [("Home" if i % 2 else "Page A", f"Results\nfor t{i}") for i in range(4)]
    assert not worker.with_page


def test_pages_beyond_the_cap_are_closed_and_restored(tool, worker):
    """With room for two pages, a third trajectory closes an idle one's page; it comes back as it was: the
    document reloaded, the actions taken on it redone, the storage kept by its context."""
    saved, worker.max_pages = worker.max_pages, 2
    states = [tool.open_state() for _ in range(3)]
    try:
        evictions = worker.evictions
        for i, state in enumerate(states):
            tool.run({"action": "open", "url": "/storage"}, state)
            tool.run({"action": "click", "ref": 1}, state)  # stores, then reloads: a new document
            tool.run({"action": "open", "url": "/"}, state)
            tool.run({"action": "type", "ref": 6, "text": f"t{i}"}, state)  # typed, not submitted: same document
        (closed,) = [i for i, s in enumerate(states) if s.page is None]
        assert closed == 1  # the most recently used idle page went: in rounds, the one needed last
        assert worker.evictions == evictions + 1 and len(worker.with_page) == 2
        assert states[1].tail == [("type", {"action": "type", "ref": 6, "text": "t1"})]
        again = tool.run({"action": "read"}, states[1])
        assert '[6] textbox "Search" = "t1"' in again.output
        assert sum(s.page is None for s in states) == 1 and states[1].page is not None
        stored = tool.run({"action": "open", "url": "/storage"}, states[1]).output
        assert stored.startswith("local=L session=- cookie=c=C")  # session storage lived in the closed tab
    finally:
        worker.max_pages = saved
        for state in states:
            state.close()
    assert not any(s in worker.with_page for s in states)


def test_element_label_names_what_a_ref_points_to():
    page = 'Home\nGo to [1] Page A or [2] Elsewhere .\n[6] textbox "Search" [7] button "Go"'
    assert [element_label(page, r) for r in (1, "2", "[7]", 6, 9)] == [
        "Page A or",
        "Elsewhere .",
        'button "Go"',
        'textbox "Search"',
        None,
    ]


def test_a_spare_blank_page_goes_before_a_running_trajectorys(tool, worker):
    """Recycled contexts keep their blank pages while there is room; a trajectory that needs a page back closes a
    spare's before it closes another trajectory's."""
    saved, worker.max_pages = worker.max_pages, 2
    saved_spare, worker.spare = worker.spare, []  # no spares of earlier tests
    a, b, c = (tool.open_state() for _ in range(3))
    try:
        for state in (a, b, c):
            tool.run({"action": "open", "url": "/a"}, state)
        assert b.page is None and a.page is not None and c.page is not None  # c needed b's page
        evictions = worker.evictions
        a.close()
        (spare,) = worker.spare
        assert spare.page is not None and len(worker.with_page) == 1  # 2 pages: the spare's and c's
        assert tool.run({"action": "read"}, b).output.startswith("Page A")  # b's page back ...
        assert spare.page is None and c.page is not None and worker.evictions == evictions  # ... for the spare's
    finally:
        worker.max_pages = saved
        for state in (a, b, c):
            state.close()
        worker.spare += saved_spare
