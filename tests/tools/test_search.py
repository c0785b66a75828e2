"""The search tool: BM25 ranking over a small corpus, the on-disk index cache, and its settings."""

from __future__ import annotations

import json

import pytest

from agentrl.config import build_config
from agentrl.errors import AgentRLError
from agentrl.tools.search import SearchIndex, SearchSettings, SearchTool, build_search, check_records

CORPUS = [
    {"id": "paris", "title": "Paris", "text": "Paris is the capital of France, on the Seine.", "url": "/wiki/paris"},
    {"id": "lyon", "title": "Lyon", "text": "Lyon is a city in France known for its food."},
    {"id": "rome", "title": "Rome", "text": "Rome is the capital of Italy, on the Tiber."},
    {"id": "seine", "title": "Seine", "text": "The Seine is a river that flows through Paris."},
]


@pytest.fixture()
def index(tmp_path):
    return SearchIndex(check_records(CORPUS, "test"), tmp_path)


def test_the_matching_passage_ranks_first(index):
    assert [p.id for p in index.search("capital of Italy", 2)][0] == "rome"
    assert [p.id for p in index.search("river through Paris", 4)][0] == "seine"
    assert len(index.search("capital", 1)) == 1


def test_a_title_match_outranks_a_mention(index):
    """`Paris` is the title of one page and a word in another's text."""
    assert index.search("paris", 2)[0].id == "paris"


def test_query_syntax_is_plain_words(index):
    for query in ['AND: "unclosed', "title:rome OR", "(((", "capital -France"]:
        index.search(query, 3)  # never a tantivy syntax error
    assert index.search("!!!", 3) == []


def test_the_index_is_built_once_and_reused(tmp_path):
    records = check_records(CORPUS, "test")
    first = SearchIndex(records, tmp_path)
    again = SearchIndex(records, tmp_path)
    assert first.built and not again.built and again.path == first.path
    assert [p.id for p in again.search("food", 1)] == ["lyon"]
    changed = SearchIndex(check_records([*CORPUS, {"id": "x", "title": "X", "text": "new"}], "t"), tmp_path)
    assert changed.built and changed.path != first.path


def test_tool_output_and_bad_arguments(index):
    tool = SearchTool(index, SearchSettings(corpus="c.jsonl", top_k=2, snippet_chars=20), max_chars=400)
    result = tool.run({"query": "capital of France"}, None)
    assert result.error is None
    assert result.output.splitlines()[0] == "Paris (/wiki/paris): Paris is the capita…"  # 20 chars
    assert tool.run({"query": "zzzz"}, None).output == "no results"
    assert tool.run({}, None).error == "bad_arguments"
    assert tool.run({"query": "  "}, None).error == "bad_arguments"


def test_records_are_checked():
    with pytest.raises(AgentRLError, match="record 2 needs string fields"):
        check_records([CORPUS[0], {"id": "a", "title": "A"}], "corpus.jsonl")
    with pytest.raises(AgentRLError, match="repeats id"):
        check_records([CORPUS[0], CORPUS[0]], "corpus.jsonl")


class _Task:
    def __init__(self, root, module=None):
        self.root, self.module = root, module


def test_build_from_a_task_folder_and_its_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in CORPUS))
    cfg = build_config([])
    tool = build_search(_Task(tmp_path), cfg, {"corpus": "corpus.jsonl", "top_k": 1}, None)
    assert tool.run({"query": "Tiber"}, None).output.startswith("Rome (rome)")
    assert (tmp_path / "cache" / "agentrl" / "search").is_dir()
    with pytest.raises(AgentRLError, match=r"task.yaml: tools.search: .*top_k"):
        build_search(_Task(tmp_path), cfg, {"corpus": "corpus.jsonl", "top_k": 0}, None)
    with pytest.raises(AgentRLError, match="not found"):
        build_search(_Task(tmp_path), cfg, {"corpus": "missing.jsonl"}, None)
    (tmp_path / "bad.jsonl").write_text('{"id": "a"\n')
    with pytest.raises(AgentRLError, match=r"bad.jsonl:1: not valid JSON"):
        build_search(_Task(tmp_path), cfg, {"corpus": "bad.jsonl"}, None)
    with pytest.raises(AgentRLError, match="names no function"):
        build_search(_Task(tmp_path, module=object()), cfg, {"corpus": "task.py:corpus"}, None)
