"""Point at the line to fix: key paths to lines of a YAML text, exceptions to lines of task.py.

pydantic reports errors by key path; `yaml.compose` keeps each node's position, so an error can name the
file, line and key. The path may come from a validated model whose shape differs a little from the YAML
(a list of tools becomes a mapping): a string step into a list matches the item that is, or holds, that key.
"""

from __future__ import annotations

import difflib
import traceback
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError


def _step(node: yaml.Node, part: str | int) -> tuple[yaml.Node, int] | None:
    """The child of `node` at `part` and the line (0-based) that names it."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value, key.start_mark.line
    elif isinstance(node, yaml.SequenceNode):
        if isinstance(part, int) and 0 <= part < len(node.value):
            item = node.value[part]
            return item, item.start_mark.line
        for item in node.value:
            if isinstance(item, yaml.ScalarNode) and item.value == str(part):
                return item, item.start_mark.line
            found = _step(item, part) if isinstance(item, yaml.MappingNode) else None
            if found is not None:
                return found
    return None


def key_line(text: str, path: Sequence[str | int]) -> int:
    """1-based line of the deepest node on `path` found in `text` (the key's own line for a mapping key).

    A path that leaves the document early (a missing key) gives the line of the last node found, so a
    missing required key points at the mapping it belongs in. Malformed YAML gives line 1.
    """
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return 1
    if node is None:
        return 1
    line = node.start_mark.line
    for part in path:
        found = _step(node, part)
        if found is None:
            break
        node, line = found
    return line + 1


def where(exc: BaseException, path: Path) -> str:
    """`path:line in function` of the deepest frame of `exc` inside `path` (or of its SyntaxError)."""
    target = path.resolve()
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename).resolve() == target:
        return f"{path}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == target]
    return f"{path}:{frames[-1].lineno} in {frames[-1].name}" if frames else str(path)


def describe(exc: BaseException, path: Path) -> str:
    return f"{where(exc, path)}: {type(exc).__name__}: {exc}"


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) pydantic model that `loc` points into."""
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def located_errors(
    exc: ValidationError, text: str, path: Path, model: type[BaseModel], prefix: tuple = ()
) -> list[str]:
    """One `file:line: key: message` per pydantic error, the line found in the YAML `text`."""
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in prefix + loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            known = _known_keys(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            message = f"unknown key; did you mean {close[0]}?" if close else "unknown key"
            message += f" (known: {', '.join(known)})" if known else ""
        else:
            message = err["msg"].removeprefix("Value error, ")
        out.append(f"{path}:{key_line(text, prefix + loc)}: {key}: {message}")
    return out
