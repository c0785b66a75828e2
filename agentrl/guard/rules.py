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
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from agentrl.guard.checkers import CheckerContext, CheckerSettings, Finding, clip, register_checker
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
DYNAMIC_CODE = {"exec", "eval", "compile", "builtins.exec", "builtins.eval"}


class PythonAstSettings(CheckerSettings):
    tool: str = "python"
    """The tool whose calls carry Python code."""
    argument: str = "code"
    """The argument that holds the code."""
    imports: list[str] = []
    """Forbidden modules, submodules included: `socket` also forbids `from socket import x`, `__import__("socket")`
    and `importlib.import_module("socket")`."""
    calls: list[str] = []
    """Forbidden functions by dotted name, resolved through import aliases (`import os as o; o.remove` is
    os.remove); glob patterns allowed (`os.exec*`, `*.unlink` for the method on any object). A reference counts
    as a call (`f = os.remove`)."""
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
        return self._scan(code, depth=0)

    def _scan(self, code: str, depth: int) -> Finding | None:
        tree = _parse(code)
        if tree is None:  # code that does not parse does not run either
            return None
        names = _Names(tree)
        for node in ast.walk(tree):
            finding = (
                self._import(node, names, code)
                or self._call(node, names, code)
                or (self._write(node, names, code) if self.settings.writes_outside_workdir else None)
                or self._dynamic(node, names, depth)
            )
            if finding is not None:
                return finding
        return None

    def _forbidden_module(self, module: str) -> str | None:
        return next((m for m in self.imports if module == m or module.startswith(m + ".")), None)

    def _import(self, node: ast.AST, names: _Names, code: str) -> Finding | None:
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and names.resolve(node.func) in ("__import__", "importlib.import_module"):
            modules = [_constant_str(node.args[0])] if node.args and _constant_str(node.args[0]) else []
        for module in modules:
            if (forbidden := self._forbidden_module(module)) is not None:
                return Finding(f"import of {forbidden}", _segment(code, node))
        return None

    def _call(self, node: ast.AST, names: _Names, code: str) -> Finding | None:
        if not self.calls:
            return None
        if isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            candidates = list(names.candidates(node))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Call):  # getattr(os, "remove")(path)
            candidates = [names.resolve(node.func) or "?"]
        else:
            return None
        for name in candidates:
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.calls):
                return Finding(f"call of {name.removeprefix('?.')}", _segment(code, node))
        return None

    def _write(self, node: ast.AST, names: _Names, code: str) -> Finding | None:
        if not isinstance(node, ast.Call):
            return None
        path = _written_path(node, names)
        if path is not None and _outside(path, self.settings.workdir):
            return Finding(f"write outside the workdir ({path})", _segment(code, node))
        return None

    def _dynamic(self, node: ast.AST, names: _Names, depth: int) -> Finding | None:
        """`exec("import socket")`: the string is code too."""
        if depth < 3 and isinstance(node, ast.Call) and names.resolve(node.func) in DYNAMIC_CODE and node.args:
            inner = _constant_str(node.args[0])
            if inner:
                return self._scan(inner, depth + 1)
        return None


@lru_cache(maxsize=256)
def _parse(code: str) -> ast.Module | None:
    """Parsed once per distinct code string: every AST policy of a call shares the parse."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


class _Names:
    """Import aliases of a module: `o` -> os, `rm` -> os.remove, and star-imported modules."""

    def __init__(self, tree: ast.Module):
        self.aliases: dict[str, str] = {}
        self.star: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        root = a.name.split(".")[0]
                        self.aliases[root] = root
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name == "*":
                        self.star.append(node.module)
                    else:
                        self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                value = _module_value(node.value, self)
                if value is not None:  # sock = __import__("socket"); f = os.remove
                    self.aliases[node.targets[0].id] = value

    def resolve(self, node: ast.AST) -> str | None:
        """Dotted name of an expression (`o.path.join` -> os.path.join); `?.attr` for an unknown receiver."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base or '?'}.{node.attr}"
        if isinstance(node, ast.Call):
            func = self.resolve(node.func)
            if func == "getattr" and len(node.args) >= 2 and (attr := _constant_str(node.args[1])):
                return f"{self.resolve(node.args[0]) or '?'}.{attr}"
            module = _module_value(node, self)
            return module if module is not None else "?"
        return None

    def candidates(self, node: ast.Name | ast.Attribute) -> Iterator[str]:
        name = self.resolve(node)
        if name is None:
            return
        yield name
        if isinstance(node, ast.Name) and node.id not in self.aliases:
            for module in self.star:
                yield f"{module}.{node.id}"


def _module_value(node: ast.AST, names: _Names) -> str | None:
    """The module or function an expression stands for, when it is a dynamic import or a dotted reference."""
    if isinstance(node, ast.Call) and node.args:
        func = names.resolve(node.func) if isinstance(node.func, ast.Name | ast.Attribute) else None
        if func in ("__import__", "importlib.import_module"):
            return _constant_str(node.args[0])
        if func == "getattr" and len(node.args) >= 2 and (attr := _constant_str(node.args[1])):
            base = names.resolve(node.args[0])
            return f"{base}.{attr}" if base else None
    if isinstance(node, ast.Attribute):
        return names.resolve(node)
    return None


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


def _written_path(node: ast.Call, names: _Names) -> str | None:
    """The literal path a call writes to, if it writes and the path's start is literal."""
    func = names.resolve(node.func) or ""
    if func in ("open", "io.open", "builtins.open", "codecs.open"):
        mode = _constant_str(_argument(node, 1, "mode")) or "r"
        return _leading_str(_argument(node, 0, "file")) if WRITE_MODE.search(mode) else None
    if func == "os.open":
        flags = _argument(node, 1, "flags")
        written = {n.attr for n in ast.walk(flags) if isinstance(n, ast.Attribute)} if flags else set()
        return _leading_str(_argument(node, 0, "path")) if written & OS_OPEN_WRITE_FLAGS else None
    if func in DESTINATION_ARG:
        return _leading_str(_argument(node, DESTINATION_ARG[func], "dst"))
    if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call | ast.BinOp):
        receiver = node.func.value
        ctor = names.resolve(receiver.func) if isinstance(receiver, ast.Call) else None
        path_like = ctor in PATH_CONSTRUCTORS or isinstance(receiver, ast.BinOp)
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

    def referenced_tools(self) -> list[str]:
        return list(self.tools)


@register_checker("url_allowlist")
class UrlAllowlistChecker:
    """The URL argument of a browser call must point to an allowed host, parsed as a browser parses it."""

    Settings = UrlAllowlistSettings

    def __init__(self, settings: UrlAllowlistSettings, context: CheckerContext):
        self.settings = settings
        self.tools = set(settings.tools)
        self.allow = [h.lower().rstrip(".") for h in settings.allow]

    def check(self, view: StepView) -> Finding | None:
        if view.phase != "pre" or view.tool not in self.tools:
            return None
        url = view.arguments.get(self.settings.argument)
        if not isinstance(url, str):
            return None
        problem = self._problem(url.strip())
        return Finding(problem, clip(url)) if problem else None

    def _problem(self, url: str) -> str | None:
        url = url.replace("\\", "/")
        if _looks_like_host_port(url):  # "localhost:8000/x" would parse with scheme "localhost"
            url = "//" + url
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme and scheme not in self.settings.schemes:
            return f"scheme {scheme}: is not allowed"
        host = parts.hostname
        if host is None and not scheme:
            if url.startswith(("/", "?", "#", ".")) or not url:
                return None if self.settings.allow_relative else "relative URL is not allowed"
            host = urlsplit("//" + url).hostname  # "evil.com/x", as typed into an address bar
        if host is None:
            return f"URL {url!r} has no host"
        host = host.rstrip(".")
        if any(host == a or (a.startswith("*.") and host.endswith(a[1:])) for a in self.allow):
            return None
        return f"host {host} is not allowed"


def _looks_like_host_port(url: str) -> bool:
    """`localhost:8000/x` parses with scheme "localhost"; it is a host and port."""
    return re.match(r"^[\w.-]+:\d+(/|$)", url) is not None


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
