"""The `browser` tool: a real headless Chromium (Playwright) on the task's own site, and nowhere else.

Actions: open(url), click(ref), type(ref, text[, submit]), read(); each returns the page as text with element
refs (`[3] Paris`, `[4] button "Add to cart"`, see `_snapshot.py`), cut to the observation budget. One
Chromium per worker (`chromium.py`); each trajectory gets a clean context on its first action, given back when
its state closes, and a page that the worker may close while the trajectory waits (too many open): its next
action reloads the document and redoes the actions taken on it.

Only the task's site (http://127.0.0.1:PORT) may be reached: `open` refuses another URL before navigating,
and the context's request fence stops links, redirects and scripts that would leave; either way the step gets
`ToolResult(error="refused_host")`.

The state has no `fork()`: tree sampling rebuilds it by replaying the prefix's actions into a fresh state.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import ExitStack
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentrl.config import Config
from agentrl.errors import AgentRLError
from agentrl.tasks import Task
from agentrl.tools import register_tool
from agentrl.tools._snapshot import SNAPSHOT_JS
from agentrl.tools.base import ToolResult, truncate
from agentrl.tools.chromium import CHROMIUM, BrowserWorker, Lease
from agentrl.tools.site import Site, serve_site
from agentrl.tools.sources import call_task_function, is_function_ref, parse_settings, task_path

ACTIONS = ("open", "click", "type", "read")
QUEUE_TIMEOUT = 600.0
"""Bound on waiting for a queued action (its own timeout starts when it runs): only a hung browser hits it."""


class BrowserSettings(BaseModel):
    """`tools: [{browser: {...}}]` in task.yaml."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    site: str
    """The task's site: a folder of static files in the task folder, or task.py:NAME (a function returning
    {path: html} pages). Served on 127.0.0.1 at a free port; the only host the browser may reach."""
    timeout: float = Field(60.0, gt=0)
    """Seconds one action (open, click, type, read) may take once it runs."""
    concurrency: int = Field(8, ge=1)
    """Actions Chromium runs at once; more wait their turn (their timeout starts when they run)."""
    max_pages: int = Field(32, ge=1)
    """Pages kept open at once (each is a renderer process, ~70 MB). Beyond it an idle trajectory's page is
    closed; its next action reloads the document and redoes the actions taken on it."""
    recycle_contexts: bool = True
    """Wipe a finished trajectory's context (cookies and all storage of the site's origin) and lend it to the
    next one, instead of a new context per trajectory (~0.7 s of CPU each here)."""
    chromium: str = CHROMIUM
    """The Chromium executable (Debian's by default)."""

    @model_validator(mode="after")
    def _room_for_every_running_action(self) -> BrowserSettings:
        if self.max_pages < self.concurrency:
            raise ValueError(f"max_pages ({self.max_pages}) must be at least concurrency ({self.concurrency})")
        return self


class BrowserState:
    """One trajectory's browser: a context leased on first use, and how to bring its page back if the worker
    closed it (the URL of the document last loaded, and the actions taken on that document since)."""

    def __init__(self, worker: BrowserWorker, site: Site, timeout: float):
        self.worker, self.site, self.timeout = worker, site, timeout
        self.lease: Lease | None = None
        self.busy = False
        self.document: str | None = None
        self.tail: list[tuple[str, dict[str, Any]]] = []
        self.refused: list[str] = []

    @property
    def page(self):
        return self.lease.page if self.lease is not None else None

    async def run(self, action: str, args: dict[str, Any]) -> tuple[str, str | None]:
        """(page text, error category or None); waits for a slot, then runs on the browser thread."""
        async with self.worker.slots:
            self.busy = True
            try:
                restore = 1 + len(self.tail) if self.document is not None and self.page is None else 0
                return await asyncio.wait_for(self._run(action, args), self.timeout * (1 + restore))
            finally:
                self.busy = False

    async def _run(self, action: str, args: dict[str, Any]) -> tuple[str, str | None]:
        if self.lease is None:
            self.lease = await self.worker.lease(self, self.site, self.timeout, self.refused)
        if self.lease.page is None:
            await self.worker.open_page(self, self.lease)
            await self._restore()
        self.worker.touch(self)
        loads, refused = self.lease.loads, len(self.refused)
        output, error = await self._act(action, args)
        if error is None and action != "read" and len(self.refused) == refused:
            if self.lease.loads != loads:  # a new document: it alone is what a restore needs
                self.document, self.tail = self.lease.page.url, []
            else:
                self.tail.append((action, args))
        return output, error

    async def _restore(self) -> None:
        """Reload the document the evicted page showed and redo the actions taken on it (its storage and
        cookies never left the context)."""
        if self.document is None:
            return
        refused = len(self.refused)
        await self.lease.page.goto(self.document, wait_until="load")
        await self.lease.page.evaluate(SNAPSHOT_JS)  # the refs the tail's clicks were made against
        for action, args in self.tail:
            await self._act(action, args)
        del self.refused[refused:]  # going back to a refused page is no new refusal

    async def _act(self, action: str, args: dict[str, Any]) -> tuple[str, str | None]:
        page = self.lease.page
        if action == "open":
            await page.goto(self.site.url(args["url"]), wait_until="load")
        elif action in ("click", "type"):
            ref = _ref(args["ref"])
            element = page.locator(f'[data-agentrl-ref="{ref}"]')
            if page.url == "about:blank" or await element.count() == 0:
                return f"no element [{ref}] on this page (open a page, then use a [n] it shows)", "bad_arguments"
            if action == "click":
                await element.click(force=True)  # the ref is visible (the snapshot skips hidden elements)
            elif await element.evaluate("el => el.tagName") == "SELECT":
                await element.select_option(label=args["text"])
            else:
                await element.fill(args["text"])
                if args.get("submit"):
                    await element.press("Enter")
            await page.wait_for_load_state("load")
        if page.url == "about:blank":
            return "no page is open yet: open a path of the site first, such as /", "bad_arguments"
        return await page.evaluate(SNAPSHOT_JS), None

    async def drop_page(self) -> None:
        """Close the page (the worker needs room); the next action brings it back."""
        if self.lease is not None:
            await self.lease.close_page()

    async def _give_back(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            await self.worker.give_back(self, lease)

    def close(self) -> None:
        """The trajectory is over: give the context back (the agent loop calls this)."""
        self.document, self.tail = None, []
        if self.lease is not None and not self.worker.closed:
            try:
                self.worker.call(self._give_back(), self.timeout * 2)
            except Exception:  # a context that will not close dies with the browser
                pass
        self.lease = None


class BrowserTool:
    name = "browser"
    description = (
        "A web browser on this task's site. open: go to a path of the site (or its full URL); click: follow the "
        "element [n] of the last page read; type: enter text into the field [n]; read: the current page again. "
        "Each action returns the page as text, its links and buttons marked [n]."
    )
    schema = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": list(ACTIONS), "description": "What to do."},
            "url": {"type": "string", "description": "open: a path of the site (/wiki/3) or a full URL."},
            "ref": {"type": "integer", "description": "click/type: the [n] of an element in the last page read."},
            "text": {"type": "string", "description": "type: the text to enter."},
            "submit": {"type": "boolean", "description": "type: press Enter afterwards."},
        },
        "required": ["action"],
    }

    def __init__(self, worker: BrowserWorker, site: Site, timeout: float, max_chars: int):
        self.worker, self.site, self.timeout, self.max_chars = worker, site, timeout, max_chars
        self.capacity = worker.max_pages
        """Trajectories served at once without closing pages (more would reload and replay pages each turn)."""

    def open_state(self) -> BrowserState:
        return BrowserState(self.worker, self.site, self.timeout)

    def run(self, args: dict[str, Any], state: BrowserState) -> ToolResult:
        action = args.get("action")
        if action not in ACTIONS:
            return ToolResult(f"browser action must be one of {', '.join(ACTIONS)}", error="bad_arguments")
        problem = self._check_args(action, args)
        if problem is not None:
            return ToolResult(problem, error="bad_arguments")
        if action == "open":
            url = self.site.url(str(args["url"]))
            if not self.site.allows(url):
                return ToolResult(f"refused: {url} is outside this site (open a path such as /)", error="refused_host")
        refused_before = len(state.refused)
        try:
            output, error = self.worker.call(state.run(action, dict(args)), QUEUE_TIMEOUT)
        except Exception as exc:  # a Playwright error (navigation failed, element detached ...) fails the step
            if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":  # asyncio's or Playwright's
                return ToolResult(f"browser timeout: {action} took more than {self.timeout:g} s", error="timeout")
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return ToolResult(f"browser error: {message}", error="tool_error")
        if len(state.refused) > refused_before:
            return ToolResult(f"refused: {state.refused[refused_before]} is outside this site", error="refused_host")
        return ToolResult(truncate(output, self.max_chars), error=error)

    @staticmethod
    def _check_args(action: str, args: dict[str, Any]) -> str | None:
        if action == "open" and not (isinstance(args.get("url"), str) and args["url"].strip()):
            return 'open needs a "url" string (a path of the site such as /)'
        if action in ("click", "type") and _ref(args.get("ref")) is None:
            return f'{action} needs "ref", the number of an element in the page ([3] -> 3)'
        if action == "type" and not isinstance(args.get("text"), str):
            return 'type needs a "text" string'
        return None


ELEMENT = re.compile(r"\[(\d+)\] (.*?)(?= \[\d+\] |$)", re.MULTILINE)


def element_label(page_text: str, ref: Any) -> str | None:
    """What `[ref]` is in a page as the browser tool shows it (`Paris`, `button "Delete account"`), or None.

    For checks on a click or type call, which names its target only by ref: look the ref up in the newest
    browser observation before the call.
    """
    number = _ref(ref)
    for match in ELEMENT.finditer(page_text):
        if int(match.group(1)) == number:
            return match.group(2).strip()
    return None


def _ref(value: Any) -> int | None:
    """An element ref: 3, "3" or "[3]" all mean 3."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().strip("[]").isdigit():
        return int(value.strip().strip("[]"))
    return None


def open_task_site(task: Task, ref: str, stack: ExitStack) -> Site:
    """Serve the task's site (a folder, or pages from a function of task.py) until `stack` closes."""
    if is_function_ref(ref):
        pages = call_task_function(task, ref, "browser site")
        if not isinstance(pages, dict) or not pages:
            raise AgentRLError(f"{task.root}/task.py: {ref} must return a non-empty dict of path -> html")
        return stack.enter_context(serve_site(pages=pages))
    return stack.enter_context(serve_site(folder=task_path(task, ref, "browser site", folder=True)))


@register_tool("browser")
def build_browser(task: Task, cfg: Config, settings: dict[str, Any], stack: ExitStack) -> BrowserTool:
    """Settings: site (required), timeout, chromium (see BrowserSettings). Starts the site and one Chromium."""
    parsed: BrowserSettings = parse_settings(BrowserSettings, task, "browser", settings)
    site = open_task_site(task, parsed.site, stack)
    worker = stack.enter_context(
        BrowserWorker(parsed.chromium, parsed.concurrency, parsed.max_pages, parsed.recycle_contexts)
    )
    return BrowserTool(worker, site, parsed.timeout, cfg.rollout.max_observation_chars)
