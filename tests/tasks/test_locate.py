"""Key paths map back to the lines of task.yaml, so schema errors can name them."""

from __future__ import annotations

from agentrl.task_authoring.locate import key_line

TEXT = """\
# a comment
name: demo
tools:
  - python
  - search: {corpus: a.jsonl}
defaults:
  rollout:
    max_turns: 3
"""


def test_top_level_and_nested_keys_give_their_own_lines():
    assert key_line(TEXT, ["name"]) == 2
    assert key_line(TEXT, ["defaults"]) == 6
    assert key_line(TEXT, ["defaults", "rollout", "max_turns"]) == 8


def test_list_items_are_found_by_index_or_by_the_key_they_hold():
    assert key_line(TEXT, ["tools", 0]) == 4
    assert key_line(TEXT, ["tools", "python"]) == 4
    assert key_line(TEXT, ["tools", "search", "corpus"]) == 5


def test_a_missing_key_points_at_the_mapping_it_belongs_in():
    assert key_line(TEXT, ["defaults", "rollout", "max_new_tokens"]) == 7
    assert key_line(TEXT, ["description"]) == 2  # the top-level mapping starts after the comment


def test_malformed_or_empty_yaml_gives_line_one():
    assert key_line("a: [1,\n", ["a"]) == 1
    assert key_line("", ["a"]) == 1
