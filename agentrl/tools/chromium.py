"""One headless Chromium per worker process, lending browser contexts that cannot leave one site.

Playwright objects belong to the thread that made them, and the agent loop calls tools from many threads: the
browser lives on one dedicated thread running an asyncio loop, and other threads submit coroutines with
`BrowserWorker.call`, so the contexts of many trajectories work concurrently.

Costs measured here (2 shared cores): a new context costs ~0.7 s of CPU, a page (its renderer process) ~70 MB
and ~0.25 s, a navigation ~0.15 s; a context without a page costs almost no memory. So each trajectory holds
a context (its cookies and storage) for its whole life, while the pages alive are capped (`max_pages`): the
most recently used idle holder's page is closed and reopened when it acts again. By default a finished
trajectory's context is recycled: the cookies and every kind of storage of the one origin it can reach are
wiped, its page is left on a blank document with no history, and the next trajectory gets both, at a fraction
of the cost of new ones (a new page starts a renderer process).

The fence: every request of a context passes a route that refuses any host but the site's (links, redirects,
scripts, frames; redirects are followed hop by hop so that each hop is checked). A refused navigation shows a
local "Refused" page and is reported to the context's holder; a refused sub-resource is dropped silently.
"""

from __future__ import annotations

import asyncio
import html
import threading
from collections import OrderedDict
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urljoin

from agentrl.errors import AgentRLError
from agentrl.tools.site import Site

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REFUSED_PAGE = "<html><body><h1>Refused</h1><p>{url} is outside this site.</p></body></html>"
WIPE_STORAGE_JS = "() => { try { localStorage.clear(); sessionStorage.clear(); } catch (e) {} }"


class Holder(Protocol):
    """What holds a lease (a trajectory's browser state): the worker may close an idle holder's page."""

    busy: bool

    async def drop_page(self) -> None: ...


class Lease:
    """A browser context fenced to `site`, with at most one page (None while evicted); refused navigations go
    to `refused`, and `loads` counts the documents the page loaded."""

    def __init__(self, context, site: Site):
        self.context, self.site = context, site
        self.page = None
        self.loads = 0
        self.refused: list[str] = []

    async def fence(self) -> None:
        await self.context.route("**/*", self._route)
        await self.context.route_web_socket("**/*", self._route_web_socket)

    async def new_page(self):
        self.page = await self.context.new_page()
        self.page.on("load", self._loaded)
        return self.page

    def _loaded(self, _page) -> None:
        self.loads += 1

    async def close_page(self) -> None:
        page, self.page = self.page, None
        if page is not None:
            await page.close()

    async def _route(self, route) -> None:
        url = route.request.url
        if not self.site.allows(url):
            await self._refuse(route, url)
            return
        try:
            response = await route.fetch(max_redirects=0)
        except Exception:
            await route.abort("failed")
            return
        location = response.headers.get("location")
        if 300 <= response.status < 400 and location and not self.site.allows(urljoin(url, location)):
            await self._refuse(route, urljoin(url, location))
            return
        await route.fulfill(response=response)

    async def _refuse(self, route, url: str) -> None:
        if route.request.is_navigation_request():
            self.refused.append(url)
            await route.fulfill(status=403, content_type="text/html", body=REFUSED_PAGE.format(url=html.escape(url)))
        else:  # a sub-resource: the site's doing, not the agent's
            await route.abort("blockedbyclient")

    async def _route_web_socket(self, ws) -> None:
        if self.site.allows(ws.url.replace("ws://", "http://", 1)):
            ws.connect_to_server()
        else:
            await ws.close()

    async def wipe(self) -> None:
        """Leave nothing of the last trajectory: storage and cookies (its only origin is the site's), and a page,
        if it keeps one, on a blank document with no history. Keeping the page keeps its renderer process: a new
        page would start one (~0.1 s here, and CPU the browser needs for actions)."""
        page = self.page or await self.new_page()
        on_site = self.site.allows(page.url)
        if on_site:
            await page.evaluate(WIPE_STORAGE_JS)
        await self.context.clear_cookies()
        cdp = await self.context.new_cdp_session(page)
        try:
            await cdp.send("Storage.clearDataForOrigin", {"origin": self.site.origin, "storageTypes": "all"})
            if on_site:  # off the site (a refused page), the tab's session storage of the site is out of reach
                await page.goto("about:blank")
                await cdp.send("Page.resetNavigationHistory")
        finally:
            await cdp.detach()
        if not on_site:
            await self.close_page()
        self.refused, self.loads = [], 0


class BrowserWorker:
    """One Chromium on its own thread; lends fenced contexts, with at most `max_pages` pages alive and
    `concurrency` actions running at once (on a busy machine queued actions wait instead of timing out)."""

    def __init__(
        self,
        executable: str = CHROMIUM,
        concurrency: int = 8,
        max_pages: int = 32,
        recycle: bool = True,
        launch_timeout: float = 60.0,
    ):
        if not Path(executable).is_file():
            raise AgentRLError(
                f"Chromium not found at {executable}: install it (Debian: apt-get install chromium) or set "
                "tools.browser.chromium in task.yaml to its path"
            )
        self.max_pages = max(max_pages, concurrency)
        self.recycle = recycle
        self.slots = asyncio.Semaphore(concurrency)
        self.with_page: OrderedDict[Holder, None] = OrderedDict()
        """Holders whose page is open, least recently used first (touched only on the browser thread)."""
        self.spare: list[Lease] = []
        """Wiped contexts, without pages, waiting for a trajectory."""
        self.evictions = 0
        self.closed = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="agentrl-browser", daemon=True)
        self.thread.start()
        try:
            self.playwright, self.browser = self.call(self._launch(executable), launch_timeout)
        except BaseException:
            self._stop_loop()
            raise

    async def _launch(self, executable: str):
        from playwright.async_api import async_playwright

        playwright = await async_playwright().start()
        try:
            browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except BaseException:
            await playwright.stop()
            raise
        return playwright, browser

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the browser thread and wait for it (from any other thread)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"browser action took more than {timeout:g} s") from None

    # --- leases and pages (browser thread only) ---

    async def lease(self, holder: Holder, site: Site, timeout: float, refused: list[str]) -> Lease:
        """A clean context on `site` for `holder`, reporting refused navigations into `refused`: a spare (recycled)
        one if any, with its blank page when it kept one, else a new one without a page."""
        spares = [s for s in self.spare if s.site == site]
        lease = next((s for s in reversed(spares) if s.page is not None), spares[-1] if spares else None)
        if lease is not None:
            self.spare.remove(lease)
        else:
            context = await self.browser.new_context(service_workers="block")
            context.set_default_timeout(timeout * 1000)
            lease = Lease(context, site)
            await lease.fence()
        lease.refused = refused
        if lease.page is not None:
            await self._make_room()
            self.with_page[holder] = None
        return lease

    async def open_page(self, holder: Holder, lease: Lease):
        """A new page for `holder`'s context, after making room for it."""
        await self._make_room()
        self.with_page[holder] = None
        return await lease.new_page()

    async def _make_room(self) -> None:
        """At the cap of open pages, close one: a spare context's blank page, else the page of the most recently
        used idle holder.

        Most, not least: the agent loop advances its trajectories in rounds, each acting once per round in the
        same order, a cycle on which least-recently-used eviction closes exactly the page needed next.
        """
        while True:
            spare_pages = [s for s in self.spare if s.page is not None]
            if len(self.with_page) + len(spare_pages) < self.max_pages:
                return
            if spare_pages:
                await spare_pages[0].close_page()
                continue
            idle = next((h for h in reversed(self.with_page) if not h.busy), None)
            if idle is None:  # every page is mid-action: over the cap for now
                return
            self.evictions += 1
            self.with_page.pop(idle)
            await idle.drop_page()

    def touch(self, holder: Holder) -> None:
        if holder in self.with_page:
            self.with_page.move_to_end(holder)

    async def give_back(self, holder: Holder, lease: Lease) -> None:
        """The trajectory is over: wipe its context into the spare pool (or close it when not recycling, when the
        pool is full, or when the wipe fails)."""
        self.with_page.pop(holder, None)
        if self.recycle and not self.closed and len(self.spare) < self.max_pages:
            try:
                await lease.wipe()
                self.spare.append(lease)
                return
            except Exception:
                pass
        await lease.context.close()

    @property
    def num_contexts(self) -> int:
        """Contexts open in Chromium (leased and spare)."""
        return len(self.browser.contexts)

    # --- shutdown ---

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.call(self._shutdown(), 30.0)
        finally:
            self._stop_loop()

    async def _shutdown(self) -> None:
        await self.browser.close()
        await self.playwright.stop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10.0)
        if not self.thread.is_alive():
            self.loop.close()

    def __enter__(self) -> BrowserWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
