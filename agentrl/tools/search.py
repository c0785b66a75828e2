"""The `search` tool: BM25-ranked passages from a corpus the task ships (tantivy).

The corpus is a list of `{id, title, text}` records (optionally `url`), from a jsonl file in the task folder or
a function of task.py. Its index is built once and cached on disk under a key of the corpus content, so
every later run, and every worker of a run, opens it in milliseconds. Searching is stateless and thread-safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tantivy
from pydantic import BaseModel, ConfigDict, Field

from agentrl.config import Config
from agentrl.errors import AgentRLError
from agentrl.tasks import Task
from agentrl.tools import register_tool
from agentrl.tools.base import ToolResult, truncate
from agentrl.tools.sources import call_task_function, is_function_ref, parse_settings, task_path

INDEX_VERSION = "1"
"""Part of the cache key: bump it when the schema or tokenization changes."""
FIELDS = ("id", "title", "text", "url")
WORD = re.compile(r"\w+")


class SearchSettings(BaseModel):
    """`tools: [{search: {...}}]` in task.yaml."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    corpus: str
    """A jsonl file of {id, title, text[, url]} records in the task folder, or task.py:NAME (a function
    returning such records)."""
    top_k: int = Field(3, ge=1, le=50)
    """Passages returned per query."""
    snippet_chars: int = Field(200, ge=16)
    """Each passage's text is cut to this many characters."""
    title_boost: float = Field(2.0, gt=0)
    """Weight of a title match relative to a match in the text."""


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str
    url: str
    score: float

    def render(self, snippet_chars: int) -> str:
        text = self.text if len(self.text) <= snippet_chars else self.text[: snippet_chars - 1] + "…"
        return f"{self.title} ({self.url or self.id}): {text}"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentrl" / "search"


def check_records(records: list[Any], source: str) -> list[dict[str, str]]:
    """Each record needs string id, title and text; url is optional. Ids are unique."""
    out, seen = [], set()
    for i, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) for k in ("id", "title", "text")):
            raise AgentRLError(f"{source}: record {i} needs string fields id, title and text, got {rec!r:.120}")
        if rec["id"] in seen:
            raise AgentRLError(f"{source}: record {i} repeats id {rec['id']!r}; ids must be unique")
        seen.add(rec["id"])
        out.append({k: str(rec.get(k, "")) for k in FIELDS})
    if not out:
        raise AgentRLError(f"{source}: the corpus is empty")
    return out


def read_jsonl(path: Path) -> list[Any]:
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AgentRLError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    return records


def corpus_key(records: list[dict[str, str]]) -> str:
    blob = json.dumps([INDEX_VERSION, records], sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("title", stored=True)
    builder.add_text_field("text", stored=True)
    builder.add_text_field("url", stored=True, tokenizer_name="raw")
    return builder.build()


def _build(records: list[dict[str, str]], path: Path) -> None:
    index = tantivy.Index(_schema(), path=str(path))
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    for rec in records:
        writer.add_document(tantivy.Document(**rec))
    writer.commit()
    writer.wait_merging_threads()


class SearchIndex:
    """A BM25 index over a corpus, opened from the cache or built into it (atomically: concurrent builders
    of the same corpus never see a half-written index)."""

    def __init__(self, records: list[dict[str, str]], cache_dir: Path, title_boost: float = 2.0):
        self.key = corpus_key(records)
        self.path = cache_dir / self.key
        self.built = False
        """True when this call built the index, False when it came from the cache."""
        if not (self.path / "meta.json").is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"{self.key}.", dir=cache_dir))
            _build(records, tmp)
            try:
                tmp.rename(self.path)
                self.built = True
            except OSError:  # another process finished the same index first
                shutil.rmtree(tmp, ignore_errors=True)
        self.index = tantivy.Index.open(str(self.path))
        self.searcher = self.index.searcher()
        self.boosts = {"title": title_boost}

    def search(self, query: str, top_k: int) -> list[Passage]:
        words = WORD.findall(query.lower())  # plain words: no query syntax (AND, quotes, field:) reaches tantivy
        if not words:
            return []
        parsed = self.index.parse_query(" ".join(words), ["title", "text"], field_boosts=self.boosts)
        out = []
        for score, address in self.searcher.search(parsed, top_k).hits:
            doc = self.searcher.doc(address)
            out.append(Passage(*(doc.get_first(k) or "" for k in FIELDS), score=score))
        return out


class SearchTool:
    name = "search"
    schema = {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "Words to search the corpus for."}},
        "required": ["query"],
    }

    def __init__(self, index: SearchIndex, settings: SearchSettings, max_chars: int):
        self.index, self.settings, self.max_chars = index, settings, max_chars
        self.description = (
            f"Search this task's documents by keywords. Returns the {settings.top_k} best matches, each with its "
            "title, its URL and the start of its text."
        )

    def open_state(self) -> None:
        return None

    def run(self, args: dict[str, Any], state: None) -> ToolResult:
        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            return ToolResult('search needs a non-empty "query" string argument', error="bad_arguments")
        hits = self.index.search(query, self.settings.top_k)
        if not hits:
            return ToolResult("no results")
        return ToolResult(truncate("\n".join(h.render(self.settings.snippet_chars) for h in hits), self.max_chars))


def load_corpus(task: Task, ref: str) -> list[dict[str, str]]:
    if is_function_ref(ref):
        records = call_task_function(task, ref, "search corpus")
        return check_records(list(records), f"{task.root}/task.py ({ref})")
    path = task_path(task, ref, "search corpus")
    return check_records(read_jsonl(path), str(path))


@register_tool("search")
def build_search(task: Task, cfg: Config, settings: dict[str, Any], stack: ExitStack) -> SearchTool:
    """Settings: corpus (required), top_k, snippet_chars, title_boost (see SearchSettings)."""
    parsed: SearchSettings = parse_settings(SearchSettings, task, "search", settings)
    index = SearchIndex(load_corpus(task, parsed.corpus), default_cache_dir(), parsed.title_boost)
    return SearchTool(index, parsed, cfg.rollout.max_observation_chars)
