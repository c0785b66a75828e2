"""A small dataflow over Python code: which module, function or literal string each expression may stand for.

One pass records the bindings of every scope (imports, assignments and tuple unpacking, loop targets, parameter
defaults, `global` names); expressions are resolved afterwards, on demand. A name read at some point takes the
bindings that may reach it: the newest one at the scope's top level and any made in a branch since. Code
nested in a function may run at any time after its definition, so it sees the enclosing scope's bindings from
there on. Through these a value is followed into attribute paths (`os.path`), `getattr`, `vars(m)[...]`,
`sys.modules[...]`, the builtins namespace and the import functions; a name no code binds stands for itself (a
builtin, or a module an earlier call of a stateful tool imported). What is computed at run time (a string joined
or decoded, a value passed as an argument or returned) is unknown, `?`.
"""

from __future__ import annotations

import ast
import builtins
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Pos = tuple[int, int]
START: Pos = (0, 0)
MAX_VALUES = 32  # values kept per expression: a bound on the combinations of branches
IMPORTERS = {"__import__", "importlib.import_module"}
ITEM_METHODS = {"get": "item", "__getitem__": "item", "__getattribute__": "attr"}  # x.get(k) is x[k] ...
BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass(frozen=True)
class Ref:
    """A module, function or attribute by dotted path (`os`, `os.system`); `?` starts an unknown object's."""

    path: str


@dataclass(frozen=True)
class Text:
    """A literal string."""

    value: str


@dataclass(frozen=True)
class Namespace:
    """A mapping whose item `k` is `prefix + k`: `vars(os)` (prefix `os.`), `sys.modules` (no prefix)."""

    prefix: str


@dataclass(frozen=True)
class ScopeDict:
    """`globals()`, `locals()`: the names of `scope` as code of `reader` sees them at `pos`."""

    scope: Scope
    reader: Scope
    pos: Pos


Value = Ref | Text | Namespace | ScopeDict
UNKNOWN = Ref("?")


@dataclass(frozen=True)
class Binding:
    pos: Pos
    definite: bool
    """Made at the scope's top level, so it surely happens and hides the bindings before it."""
    value: ast.expr | Value
    """An expression, resolved where it stands, or a value."""


@dataclass(eq=False)
class Scope:
    kind: Literal["module", "function", "class", "inline"]
    """A function body runs when called, a class body, comprehension or exec string ("inline") where it stands."""
    parent: Scope | None
    pos: Pos
    """Where the scope is defined in its parent."""
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    declared: dict[str, Scope] = field(default_factory=dict)
    """Names declared `global` or `nonlocal`, and the scope that holds them."""


def _pos(node: ast.AST) -> Pos:
    return node.lineno, node.col_offset


def _end(node: ast.AST) -> Pos:
    return node.end_lineno, node.end_col_offset


def _ref(path: str) -> Value:
    """The value of a dotted path, in one spelling: `builtins.open` and `__builtins__.open` are `open`."""
    head, _, rest = path.partition(".")
    if head == "__builtins__":
        path = f"builtins.{rest}" if rest else "builtins"
    if path.endswith(".__dict__"):
        return Namespace(path.removesuffix("__dict__"))
    if path == "sys.modules":
        return Namespace("")
    path = path.removeprefix("builtins.")
    return Ref("__import__" if path == "importlib.__import__" else path)


class Flow:
    """Bindings of one piece of code (and of the exec strings added to it), and the values of its expressions."""

    def __init__(self, tree: ast.Module):
        self.trees: list[ast.Module] = []  # kept alive: nodes are known by id
        self.scope_of: dict[int, Scope] = {}
        self.stars: list[str] = []  # modules of `from m import *`
        self._memo: dict[int, frozenset[Value]] = {}
        self.module = Scope("module", None, START)
        self._add(tree, self.module)

    def add_code(self, tree: ast.Module, call: ast.Call) -> None:
        """Code that `call` (exec, eval) runs: its free names are those of the code around the call."""
        self._add(tree, Scope("inline", self.scope_of[id(call)], _pos(call)))

    def _add(self, tree: ast.Module, scope: Scope) -> None:
        self.trees.append(tree)
        self._body(tree.body, scope)

    # --- what the checker asks ---------------------------------------------------------------------------------

    def names(self, node: ast.expr) -> list[str]:
        """Dotted names an expression may stand for, known ones first; a builtin also as `builtins.name`."""
        paths = sorted((v.path for v in self.values(node) if isinstance(v, Ref) and v != UNKNOWN), key=_unknown_last)
        return paths + [f"builtins.{p}" for p in paths if p.split(".")[0] in BUILTIN_NAMES]

    def texts(self, node: ast.expr) -> list[str]:
        """Literal strings an expression may hold."""
        return sorted(v.value for v in self.values(node) if isinstance(v, Text))

    def imported(self, node: ast.AST) -> list[str]:
        """Modules a node imports: import statements, import functions, `sys.modules` lookups."""
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom):
            return (
                [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if node.module and not node.level
                else []
            )
        if (access := _item_access(node)) is not None:
            base, key, _ = access
            return self.texts(key) if Namespace("") in self.values(base) else []
        if isinstance(node, ast.Call) and (module := _module_argument(node)) is not None:
            return self.texts(module) if set(self.names(node.func)) & IMPORTERS else []
        return []

    # --- values ------------------------------------------------------------------------------------------------

    def values(self, node: ast.expr) -> frozenset[Value]:
        key = id(node)
        if key not in self._memo:
            self._memo[key] = frozenset({UNKNOWN})  # a value defined through itself is unknown
            self._memo[key] = frozenset(itertools.islice(self._evaluate(node), MAX_VALUES)) or frozenset({UNKNOWN})
        return self._memo[key]

    def _evaluate(self, node: ast.expr) -> Iterator[Value]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield Text(node.value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            yield from self._concat([node.left, node.right])
        elif isinstance(node, ast.JoinedStr):
            yield from self._concat(node.values)
        elif isinstance(node, ast.FormattedValue) and node.conversion == -1 and node.format_spec is None:
            yield from self.values(node.value)
        elif isinstance(node, ast.Name):
            yield from self._lookup(node.id, self.scope_of[id(node)], _pos(node))
        elif isinstance(node, ast.NamedExpr):
            yield from self.values(node.value)
        elif isinstance(node, ast.IfExp | ast.BoolOp):
            yield from itertools.chain.from_iterable(self.values(n) for n in _alternatives(node))
        elif (access := _item_access(node)) is not None:
            yield from self._access(*access)
        elif isinstance(node, ast.Attribute):
            yield from (_attribute(v, node.attr) for v in self.values(node.value))
        elif isinstance(node, ast.Call):
            yield from self._call(node)
        else:
            yield UNKNOWN

    def _concat(self, parts: list[ast.expr]) -> Iterator[Value]:
        """`"o" + "s"`, `f"{m}.path"`: every combination of the parts' literal strings."""
        choices = [self.texts(p) for p in parts]
        yield from (Text("".join(c)) for c in itertools.product(*choices)) if all(choices) else [UNKNOWN]

    def _access(self, base: ast.expr, key: ast.expr, kind: str) -> Iterator[Value]:
        for value, text in itertools.product(self.values(base), self.texts(key)):
            if kind == "attr":
                yield _attribute(value, text)
            else:
                yield from self._item(value, text)

    def _item(self, value: Value, key: str) -> frozenset[Value]:
        """`value[key]`: a namespace's entry, a builtin, or a name of the checked code (`globals()["os"]`)."""
        if isinstance(value, Namespace):
            return frozenset({_ref(value.prefix + key)})
        if value == Ref("builtins"):  # `__builtins__` is a dict outside __main__
            return frozenset({_ref(f"builtins.{key}")})
        if isinstance(value, ScopeDict) and value.scope is value.reader:
            return self._lookup(key, value.reader, value.pos)
        if isinstance(value, ScopeDict):  # globals() read inside a function
            return self._seen_from(key, value.scope, value.reader)
        return frozenset({UNKNOWN})

    def _call(self, node: ast.Call) -> Iterator[Value]:
        scope, args = self.scope_of[id(node)], node.args
        for func in self.names(node.func):
            if func == "getattr" and len(args) >= 2:
                yield from self._access(args[0], args[1], "attr")
            elif func in IMPORTERS and (module := _module_argument(node)) is not None:
                top = func == "__import__" and len(args) < 4 and not any(k.arg == "fromlist" for k in node.keywords)
                yield from (_ref(m.split(".")[0] if top else m) for m in self.texts(module))
            elif func == "vars" and args:
                yield from (Namespace(f"{v.path}.") if isinstance(v, Ref) else UNKNOWN for v in self.values(args[0]))
            elif func in ("globals", "locals", "vars"):
                yield ScopeDict(self.module if func == "globals" else scope, scope, _pos(node))
        yield UNKNOWN  # what an ordinary call returns

    # --- names -------------------------------------------------------------------------------------------------

    def _lookup(self, name: str, scope: Scope, pos: Pos) -> frozenset[Value]:
        """What `name` may hold when code of `scope` reads it at `pos`."""
        if (owner := scope.declared.get(name)) is not None:
            return self._seen_from(name, owner, scope)
        values, hidden = self._reaching(scope, name, pos)
        if hidden or _local(scope, name):
            return values
        return values | self._enclosing(name, scope)

    def _reaching(self, scope: Scope, name: str, pos: Pos) -> tuple[frozenset[Value], bool]:
        """The values of the bindings that may reach `pos`, and whether one surely happened (hiding the rest)."""
        values: set[Value] = set()
        for binding in sorted((b for b in scope.bindings.get(name, ()) if b.pos <= pos), key=lambda b: b.pos)[::-1]:
            values |= self._binding_values(binding)
            if binding.definite:
                return frozenset(values), True
        return frozenset(values), False

    def _enclosing(self, name: str, scope: Scope, later: bool = False) -> frozenset[Value]:
        """A name `scope` does not bind: the enclosing scope's (a class body's names are not), else itself."""
        parent = scope.parent
        while parent is not None and parent.kind == "class":
            parent = parent.parent
        if parent is None:
            return frozenset({_ref(name), *(_ref(f"{m}.{name}") for m in self.stars)})
        return self._seen_from(name, parent, scope, later)

    def _seen_from(self, name: str, owner: Scope, reader: Scope, later: bool = False) -> frozenset[Value]:
        """`name` of `owner` as nested code of `reader` sees it: a function may run any time after its definition."""
        anchor = reader
        later = later or anchor.kind == "function"
        while anchor.parent is not owner:
            anchor = anchor.parent
            later = later or anchor.kind == "function"
        values, hidden = self._reaching(owner, name, anchor.pos)
        if later:
            after = (b for b in owner.bindings.get(name, ()) if b.pos > anchor.pos)
            values = values.union(*(self._binding_values(b) for b in after))
        if hidden or _local(owner, name):
            return values
        return values | self._enclosing(name, owner, later)

    def _binding_values(self, binding: Binding) -> frozenset[Value]:
        value = binding.value
        if isinstance(value, ast.AST):
            return self.values(value)
        return frozenset({value})

    # --- recording bindings ------------------------------------------------------------------------------------

    def _body(self, body: list[ast.stmt], scope: Scope) -> None:
        for statement in body:
            self._statement(statement, scope, definite=True)

    def _statement(self, node: ast.stmt, scope: Scope, definite: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self._definition(node, scope, definite)
            return
        self._bindings(node, scope, definite)
        self._children(node, scope)

    def _children(self, node: ast.AST, scope: Scope) -> None:
        """Statements nested in a compound statement are conditional: a branch, a loop body, a handler."""
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self._statement(child, scope, definite=False)
            elif isinstance(child, ast.expr):
                self._expression(child, scope)
            else:  # except handlers, match cases, with items, keywords, arguments
                self._children(child, scope)

    def _definition(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, scope: Scope, definite: bool
    ) -> None:
        inner = Scope("class" if isinstance(node, ast.ClassDef) else "function", scope, _pos(node))
        for child in ast.iter_child_nodes(node):  # decorators, bases, defaults, annotations: read where defined
            if not isinstance(child, ast.stmt):
                (self._expression if isinstance(child, ast.expr) else self._children)(child, scope)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self._parameters(node.args, inner)
        self._bind(scope, node.name, UNKNOWN, _pos(node), definite)
        self._body(node.body, inner)

    def _parameters(self, args: ast.arguments, scope: Scope) -> None:
        """A parameter holds its default or whatever a caller passes."""
        positional = args.posonlyargs + args.args
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
        pairs += [(a, None) for a in (args.vararg, args.kwarg) if a is not None]
        for arg, default in pairs:
            self._bind(scope, arg.arg, UNKNOWN, START, definite=False)
            if default is not None:
                self._bind(scope, arg.arg, default, START, definite=False)

    def _bindings(self, node: ast.stmt, scope: Scope, definite: bool) -> None:
        end = _end(node)
        if isinstance(node, ast.Import):
            for a in node.names:
                root = a.name.split(".")[0]  # `import os.path` binds os
                self._bind(scope, a.asname or root, _ref(a.name if a.asname else root), end, definite)
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name == "*":
                    self.stars.append(node.module or "?")
                else:
                    value = _ref(f"{node.module}.{a.name}") if node.module and not node.level else UNKNOWN
                    self._bind(scope, a.asname or a.name, value, end, definite)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                self._assign(target, node.value, scope, end, definite)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            self._assign(node.target, node.value if isinstance(node, ast.AnnAssign) else None, scope, end, definite)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                self._assign(target, None, scope, end, definite)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self._loop(node.target, node.iter, scope, _end(node.iter))
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                if item.optional_vars is not None:
                    self._assign(item.optional_vars, None, scope, _end(item.context_expr), definite=False)
        elif isinstance(node, ast.Try | ast.TryStar):
            for handler in node.handlers:
                if handler.name:
                    self._bind(scope, handler.name, UNKNOWN, _pos(handler), definite=False)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            owner = self.module if isinstance(node, ast.Global) else _enclosing_function(scope)
            if owner is not None and owner is not scope:  # else Python refuses it, or it changes nothing
                scope.declared.update(dict.fromkeys(node.names, owner))

    def _assign(self, target: ast.expr, value: ast.expr | None, scope: Scope, pos: Pos, definite: bool) -> None:
        """Binds the names of `target`; `a, b = os, sys` pairs them up, any other unpacking is unknown."""
        if isinstance(target, ast.Name):
            self._bind(scope, target.id, UNKNOWN if value is None else value, pos, definite)
        elif isinstance(target, ast.Starred):
            self._assign(target.value, None, scope, pos, definite)
        elif isinstance(target, ast.Tuple | ast.List):
            pairs = _literal_items(value)
            if pairs is None or len(pairs) != len(target.elts) or any(isinstance(t, ast.Starred) for t in target.elts):
                pairs = [None] * len(target.elts)
            for element, item in zip(target.elts, pairs, strict=True):
                self._assign(element, item, scope, pos, definite)

    def _loop(self, target: ast.expr, iterable: ast.expr, scope: Scope, pos: Pos) -> None:
        """`for m in (os, sys)`: the target may hold each item of a literal sequence."""
        for item in _literal_items(iterable) or [None]:
            self._assign(target, item, scope, pos, definite=False)

    def _bind(self, scope: Scope, name: str, value: ast.expr | Value, pos: Pos, definite: bool) -> None:
        owner = scope.declared.get(name, scope)
        if owner is not scope:  # `global x` in a function: a binding of the module, whenever the function runs
            anchor = scope
            while anchor.parent is not owner:
                anchor = anchor.parent
            pos, definite = anchor.pos, False
        owner.bindings.setdefault(name, []).append(Binding(pos, definite, value))

    def _expression(self, node: ast.expr, scope: Scope) -> None:
        self.scope_of[id(node)] = scope
        if isinstance(node, ast.Lambda):
            self._children(node.args, scope)
            inner = Scope("function", scope, _pos(node))
            self._parameters(node.args, inner)
            self._expression(node.body, inner)
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            self._comprehension(node, scope)
        else:
            if isinstance(node, ast.NamedExpr):
                self._bind(scope, node.target.id, node.value, _end(node), definite=False)
            for child in ast.iter_child_nodes(node):
                (self._expression if isinstance(child, ast.expr) else self._children)(child, scope)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp, scope: Scope) -> None:
        inner = Scope("inline", scope, _pos(node))
        for index, generator in enumerate(node.generators):
            self._expression(generator.iter, scope if index == 0 else inner)
            self._expression(generator.target, inner)
            self._loop(generator.target, generator.iter, inner, inner.pos)  # bound before the element is read
            for condition in generator.ifs:
                self._expression(condition, inner)
        for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
            self._expression(part, inner)


def _unknown_last(path: str) -> tuple[bool, str]:
    return path.startswith("?"), path


def _local(scope: Scope, name: str) -> bool:
    """A name a function binds anywhere is local to it throughout."""
    return scope.kind == "function" and name in scope.bindings


def _enclosing_function(scope: Scope) -> Scope | None:
    parent = scope.parent
    while parent is not None and parent.kind != "function":
        parent = parent.parent
    return parent


def _alternatives(node: ast.IfExp | ast.BoolOp) -> list[ast.expr]:
    return [node.body, node.orelse] if isinstance(node, ast.IfExp) else node.values


def _literal_items(node: ast.expr | None) -> list[ast.expr] | None:
    if isinstance(node, ast.Tuple | ast.List | ast.Set) and not any(isinstance(e, ast.Starred) for e in node.elts):
        return node.elts
    return None


def _item_access(node: ast.AST) -> tuple[ast.expr, ast.expr, str] | None:
    """`x[k]`, `x.get(k)`, `x.__getitem__(k)` (an item) and `x.__getattribute__(k)` (an attribute)."""
    if isinstance(node, ast.Subscript):
        return node.value, node.slice, "item"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        kind = ITEM_METHODS.get(node.func.attr)
        return (node.func.value, node.args[0], kind) if kind else None
    return None


def _module_argument(node: ast.Call) -> ast.expr | None:
    if node.args:
        return node.args[0]
    return next((k.value for k in node.keywords if k.arg == "name"), None)


def _attribute(value: Value, attr: str) -> Value:
    return _ref(f"{value.path}.{attr}") if isinstance(value, Ref) else Ref(f"?.{attr}")
