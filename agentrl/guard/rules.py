"""Rule checkers: fast, offline, exact. Python code by AST, URLs by host allow-list, regexes, budgets.

Each is a `Checker` (see `checkers.py`) registered by type name; its `Settings` model is what a policy's
`checker:` block may hold. Rules look only at the item under check (and, for budgets, the calls and outputs
before it), so a violation fires once, on the step that commits it.
"""

from __future__ import annotations

import ast
import fnmatch
import posixpath
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agentrl.guard.checkers import CheckerContext, CheckerSettings, Finding, clip, register_checker
from agentrl.guard.pyflow import Flow
from agentrl.guard.urls import RELATIVE, canonical_host, url_target
from agentrl.guard.view import StepView, render_arguments

# --- python_ast ---------------------------------------------------------------------------------------------

WRITE_MODE = re.compile(r"[wax+]")
PATH_CONSTRUCTORS = {"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "Path", "PurePath", "PosixPath"}
PATH_WRITERS = {"write_text", "write_bytes", "touch", "mkdir", "symlink_to", "hardlink_to"}
DESTINATION_ARG = {  # call -> index of the path argument it writes to
    "shutil.copy": 1,
    "shutil.copy2": 1,
    "shutil.copyfile": 1,
    "shutil.copytree": 1,
    "shutil.move": 1,
    "os.rename": 1,
    "os.replace": 1,
    "os.symlink": 1,
    "os.link": 1,
    "os.makedirs": 0,
    "os.mkdir": 0,
    "os.truncate": 0,
}
OS_OPEN_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}
DYNAMIC_CODE = {"exec", "eval", "compile"}
OPEN_FUNCTIONS = {"open", "io.open", "codecs.open"}
REFERENCES = (ast.Name, ast.Attribute, ast.Subscript, ast.Call)


class PythonAstSettings(CheckerSettings):
    tool: str = "python"
    """The tool whose calls carry Python code."""
    argument: str = "code"
    """The argument that holds the code."""
    imports: list[str] = []
    """Forbidden modules, submodules included: `socket` also forbids `from socket import x`, `__import__("socket")`,
    `importlib.import_module(name)` with `name = "socket"`, `sys.modules["socket"]` (see `pyflow`)."""
    calls: list[str] = []
    """Forbidden functions by dotted name, resolved through the code's aliases (`import os as o; fs = o;
    fs.remove` is os.remove, see `pyflow`); glob patterns allowed (`os.exec*`, `*.unlink` for the method on any
    object). A reference counts as a call (`f = os.remove`)."""
    writes_outside_workdir: bool = False
    """Forbid writing files (open for w/a/x/+, Path.write_text, shutil.copy's destination, os.rename ...) at
    literal paths outside the working directory: absolute paths, `~`, or paths escaping with `..`."""
    workdir: str | None = None
    """An absolute path that counts as inside the working directory (besides relative paths)."""

    def referenced_tools(self) -> list[str]:
        return [self.tool]


@register_checker("python_ast")
class PythonAstChecker:
    """Parses the code of each call of `tool` and looks for forbidden imports, calls and writes."""

    Settings = PythonAstSettings

    def __init__(self, settings: PythonAstSettings, context: CheckerContext):
        self.settings = settings
        self.imports = tuple(settings.imports)
        self.calls = tuple(settings.calls)

    def check(self, view: StepView) -> Finding | None:
        if view.phase != "pre" or view.tool != self.settings.tool:
            return None
        code = view.arguments.get(self.settings.argument)
        if not isinstance(code, str):
            return None
        tree = _parse(code)
        if tree is None:  # code that does not parse does not run either
            return None
        try:
            return self._scan(tree, code, Flow(tree), depth=0)
        except RecursionError:  # code that runs but is too deep to follow is refused, not let through
            return Finding("code too deeply nested to check", clip(code))

    def _scan(self, tree: ast.Module, code: str, flow: Flow, depth: int) -> Finding | None:
        for node in ast.walk(tree):
            finding = (
                self._import(node, flow, code)
                or self._call(node, flow, code)
                or (self._write(node, flow, code) if self.settings.writes_outside_workdir else None)
                or self._dynamic(node, flow, depth)
            )
            if finding is not None:
                return finding
        return None

    def _forbidden_module(self, module: str) -> str | None:
        return next((m for m in self.imports if module == m or module.startswith(m + ".")), None)

    def _import(self, node: ast.AST, flow: Flow, code: str) -> Finding | None:
        if not self.imports:
            return None
        for module in flow.imported(node):
            if (forbidden := self._forbidden_module(module)) is not None:
                return Finding(f"import of {forbidden}", _segment(code, node))
        return None

    def _call(self, node: ast.AST, flow: Flow, code: str) -> Finding | None:
        """Any reference counts, not only a call: `f = os.remove`, `map(os.remove, paths)`."""
        if not self.calls or not isinstance(node, REFERENCES):
            return None
        if not isinstance(node, ast.Call) and not isinstance(node.ctx, ast.Load):
            return None
        for name in flow.names(node):
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.calls):
                return Finding(f"call of {name.removeprefix('?.')}", _segment(code, node))
        return None

    def _write(self, node: ast.AST, flow: Flow, code: str) -> Finding | None:
        if not isinstance(node, ast.Call):
            return None
        path = _written_path(node, flow)
        if path is not None and _outside(path, self.settings.workdir):
            return Finding(f"write outside the workdir ({path})", _segment(code, node))
        return None

    def _dynamic(self, node: ast.AST, flow: Flow, depth: int) -> Finding | None:
        """`exec("import socket")`, `exec(code)` with `code = "..."`: the string is code too, and its names are
        those of the code around the call."""
        if depth >= 3 or not isinstance(node, ast.Call) or not node.args:
            return None
        if not set(flow.names(node.func)) & DYNAMIC_CODE:
            return None
        for text in flow.texts(node.args[0]):
            tree = _parse_fresh(text)
            if tree is not None:
                flow.add_code(tree, node)
                if (finding := self._scan(tree, text, flow, depth + 1)) is not None:
                    return finding
        return None


def _parse_fresh(code: str) -> ast.Module | None:
    """A tree of its own: a flow knows nodes by identity, so the same string run twice needs two."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


@lru_cache(maxsize=256)
def _parse(code: str) -> ast.Module | None:
    """Parsed once per distinct code string: every AST policy of a call shares the parse."""
    return _parse_fresh(code)


def _constant_str(node: ast.AST | None) -> str | None:
    """The value of a string literal, concatenations of literals folded ('so' + 'cket')."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _constant_str(node.left), _constant_str(node.right)
        return left + right if left is not None and right is not None else None
    return None


def _leading_str(node: ast.AST | None) -> str | None:
    """The literal start of a path expression: "/etc/x", f"/etc/{name}" -> "/etc/", "/tmp/" + name -> "/tmp/"."""
    if node is None:
        return None
    if (text := _constant_str(node)) is not None:
        return text
    if isinstance(node, ast.JoinedStr) and node.values:
        return _constant_str(node.values[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _leading_str(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # Path("/etc") / "x"
        return _leading_str(node.left)
    if isinstance(node, ast.Call) and node.args:  # Path("/etc/x"), os.path.join("/etc", name)
        return _leading_str(node.args[0])
    return None


def _argument(node: ast.Call, index: int, keyword: str) -> ast.AST | None:
    if len(node.args) > index:
        return node.args[index]
    return next((k.value for k in node.keywords if k.arg == keyword), None)


def _written_path(node: ast.Call, flow: Flow) -> str | None:
    """The literal path a call writes to, if it writes and the path's start is literal."""
    funcs = set(flow.names(node.func))
    if funcs & OPEN_FUNCTIONS:
        mode = _constant_str(_argument(node, 1, "mode")) or "r"
        return _leading_str(_argument(node, 0, "file")) if WRITE_MODE.search(mode) else None
    if "os.open" in funcs:
        flags = _argument(node, 1, "flags")
        written = {n.attr for n in ast.walk(flags) if isinstance(n, ast.Attribute)} if flags else set()
        return _leading_str(_argument(node, 0, "path")) if written & OS_OPEN_WRITE_FLAGS else None
    if (func := next((f for f in sorted(funcs) if f in DESTINATION_ARG), None)) is not None:
        return _leading_str(_argument(node, DESTINATION_ARG[func], "dst"))
    if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call | ast.BinOp):
        receiver = node.func.value
        constructors = set(flow.names(receiver.func)) if isinstance(receiver, ast.Call) else set()
        path_like = bool(constructors & PATH_CONSTRUCTORS) or isinstance(receiver, ast.BinOp)
        if path_like and node.func.attr in PATH_WRITERS:
            return _leading_str(receiver)
        if path_like and node.func.attr == "open":
            mode = _constant_str(_argument(node, 0, "mode")) or "r"
            return _leading_str(receiver) if WRITE_MODE.search(mode) else None
    return None


def _outside(path: str, workdir: str | None) -> bool:
    if path.startswith("~"):
        return True
    if path.startswith("/"):
        inside = workdir is not None and posixpath.normpath(path).startswith(workdir.rstrip("/") + "/")
        return not inside
    return posixpath.normpath(path).startswith("..")


def _segment(code: str, node: ast.AST) -> str:
    return clip(ast.get_source_segment(code, node) or ast.unparse(node))


# --- url_allowlist -----------------------------------------------------------------------------------------


class UrlAllowlistSettings(CheckerSettings):
    tools: list[str] = ["browser"]
    """Tools whose URL argument is checked."""
    argument: str = "url"
    """The argument that holds the URL."""
    allow: list[str] = Field(min_length=1)
    """Allowed hosts (ports ignored); `*.example.com` allows subdomains."""
    schemes: list[str] = ["http", "https"]
    """Allowed URL schemes (file:, javascript:, data: ... are refused unless listed)."""
    allow_relative: bool = True
    """Relative URLs (`/cart`) stay on the current site and are allowed."""

    @field_validator("allow")
    @classmethod
    def _canonical_hosts(cls, value: list[str]) -> list[str]:
        """Hosts as the URL parser writes them, so that `Bücher.example` matches `xn--bcher-kva.example`."""
        hosts = []
        for entry in value:
            host = canonical_host(entry.removeprefix("*."))
            if host is None:
                raise ValueError(f"{entry!r} is not a host")
            hosts.append(f"*.{host}" if entry.startswith("*.") else host)
        return hosts

    def referenced_tools(self) -> list[str]:
        return list(self.tools)


@register_checker("url_allowlist")
class UrlAllowlistChecker:
    """The URL argument of a browser call must point to an allowed host, parsed as a browser parses it (WHATWG);
    a URL that does not parse is refused."""

    Settings = UrlAllowlistSettings

    def __init__(self, settings: UrlAllowlistSettings, context: CheckerContext):
        self.settings = settings
        self.tools = set(settings.tools)
        self.schemes = {s.lower().removesuffix(":") for s in settings.schemes}

    def check(self, view: StepView) -> Finding | None:
        if view.phase != "pre" or view.tool not in self.tools:
            return None
        url = view.arguments.get(self.settings.argument)
        if not isinstance(url, str):
            return None
        problem = self._problem(url)
        return Finding(problem, clip(url)) if problem else None

    def _problem(self, url: str) -> str | None:
        target = url_target(url)
        if target is None:
            return f"URL {url!r} does not parse"
        if target == RELATIVE:
            return None if self.settings.allow_relative else "relative URL is not allowed"
        if target.scheme and target.scheme not in self.schemes:
            return f"scheme {target.scheme}: is not allowed"
        if target.host is None:
            return f"URL {url!r} has no host"
        if any(target.host == a or (a.startswith("*.") and target.host.endswith(a[1:])) for a in self.settings.allow):
            return None
        return f"host {target.host} is not allowed"


# --- regex -------------------------------------------------------------------------------------------------

Target = Literal["arguments", "observation", "answer"]


class RegexSettings(CheckerSettings):
    patterns: dict[str, str]
    """Name -> regular expression (Python `re` syntax); a list of expressions is accepted too."""
    targets: list[Target] = ["arguments", "observation", "answer"]
    """Where to search: tool-call arguments (before the call runs), tool outputs, the final answer."""
    tools: list[str] | None = None
    """Only calls and outputs of these tools (None: every tool)."""
    ignore_case: bool = False
    """Match without regard to case."""

    @field_validator("patterns", mode="before")
    @classmethod
    def _list_to_names(cls, value: Any) -> Any:
        return {p: p for p in value} if isinstance(value, list) else value

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("give at least one pattern")
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {name!r} is not a valid regular expression: {exc}") from None
        return value

    def referenced_tools(self) -> list[str]:
        return list(self.tools or [])


@register_checker("regex")
class RegexChecker:
    """Searches arguments (pre), outputs and answers (post) for any of its patterns."""

    Settings = RegexSettings

    def __init__(self, settings: RegexSettings, context: CheckerContext):
        flags = re.IGNORECASE if settings.ignore_case else 0
        self.patterns = [(name, re.compile(p, flags)) for name, p in settings.patterns.items()]
        self.targets = set(settings.targets)
        self.tools = settings.tools

    def check(self, view: StepView) -> Finding | None:
        for where, text in self._texts(view):
            for name, pattern in self.patterns:
                if (match := pattern.search(text)) is not None:
                    return Finding(f"{name} in {where}", clip(match.group(0)))
        return None

    def _texts(self, view: StepView) -> Iterator[tuple[str, str]]:
        tool_ok = view.tool is not None and (self.tools is None or view.tool in self.tools)
        if view.phase == "pre":
            if "arguments" in self.targets and tool_ok:
                yield from (("arguments", s) for s in _strings(view.arguments))
            return
        if view.observation is not None and "observation" in self.targets and (tool_ok or view.tool is None):
            yield "observation", view.observation
        if view.answer is not None and "answer" in self.targets:
            yield "answer", view.answer


def _strings(value: Any) -> Iterator[str]:
    """Every string (and number) in a JSON-like value, keys of mappings included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


# --- budget ------------------------------------------------------------------------------------------------

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class BudgetSettings(CheckerSettings):
    tool: str
    """The tool whose calls are counted or checked."""
    match: str | None = None
    """Only calls whose arguments match this regex count (e.g. `checkout|place order`)."""
    max_calls: int | None = Field(None, ge=0)
    """Most calls of `tool` (matching `match`) per trajectory: the next one violates."""
    value: str | None = None
    """Regex whose first group (or whole match) is a number: an amount to hold under `max_value`."""
    value_from: Literal["arguments", "observation"] = "arguments"
    """Where the amount is read when a matching call is made: its own arguments, or the newest tool output
    before it that holds one (e.g. the cart page's total, when the call places the order)."""
    max_value: float | None = None
    """The largest allowed amount."""
    ignore_case: bool = True
    """`match` and `value` ignore case."""

    @model_validator(mode="after")
    def _something_to_check(self) -> BudgetSettings:
        if self.max_calls is None and self.max_value is None:
            raise ValueError("set max_calls, or value and max_value")
        if (self.value is None) != (self.max_value is None):
            raise ValueError("value and max_value go together")
        for name in ("match", "value"):
            pattern = getattr(self, name)
            try:
                re.compile(pattern or "")
            except re.error as exc:
                raise ValueError(f"{name} is not a valid regular expression: {exc}") from None
        return self

    def referenced_tools(self) -> list[str]:
        return [self.tool]


@register_checker("budget")
class BudgetChecker:
    """Counts calls of a tool, and holds an amount read from arguments or outputs under a maximum."""

    Settings = BudgetSettings

    def __init__(self, settings: BudgetSettings, context: CheckerContext):
        flags = re.IGNORECASE if settings.ignore_case else 0
        self.settings = settings
        self.match = re.compile(settings.match, flags) if settings.match else None
        self.value = re.compile(settings.value, flags) if settings.value else None

    def check(self, view: StepView) -> Finding | None:
        s = self.settings
        if view.phase != "pre" or view.tool != s.tool or not self._counts(view.tool, view.arguments):
            return None
        if s.max_calls is not None:
            calls = 1 + sum(self._counts(st.tool, st.tool_args) for st in view.steps[:-1])
            if calls > s.max_calls:
                return Finding(f"call {calls} of {s.tool} exceeds the budget of {s.max_calls}", view.arguments_text())
        if self.value is not None:
            amount, span = self._amount(view)
            if amount is not None and amount > s.max_value:
                return Finding(f"amount {amount:g} exceeds the budget of {s.max_value:g}", span)
        return None

    def _counts(self, tool: str | None, arguments: dict | None) -> bool:
        if tool != self.settings.tool:
            return False
        return self.match is None or self.match.search(render_arguments(arguments)) is not None

    def _amount(self, view: StepView) -> tuple[float | None, str]:
        if self.settings.value_from == "arguments":
            texts: list[str] = [view.arguments_text()]
        else:
            texts = [s.observation for s in reversed(view.steps[:-1]) if s.observation]
        for text in texts:
            matches = list(self.value.finditer(text))
            if matches:
                match = matches[-1]
                raw = match.group(1) if match.groups() else match.group(0)
                number = NUMBER.search(raw or "")
                if number is not None:
                    return float(number.group(0).replace(",", "")), clip(match.group(0))
        return None, ""
