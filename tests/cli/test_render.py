"""`agentrl tasks render`: demonstrations as the policy sees them, in the model's own format, as text or JSON."""

from __future__ import annotations

import json

from agentrl.models.loading import load_tokenizer

from .test_cli import agentrl  # noqa: F401 (the in-process CLI fixture)


def test_render_marks_the_trained_spans_and_counts_each_turn(agentrl):  # noqa: F811
    result = agentrl("tasks", "render", "arith-python", "-n", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("format: fenced\n")
    assert result.stdout.count("--- train-0-") == 2
    assert "turn 1: " in result.stdout and " generated + " in result.stdout
    # the trained spans are the model's messages, through the end-of-turn token; the prompt and outputs are not
    assert "[[```python\nprint(" in result.stdout and "<|im_end|>]]" in result.stdout
    assert "[[<|im_start|>" not in result.stdout


def test_render_json_is_only_rollout_records_in_the_models_own_format(agentrl, tmp_path):  # noqa: F811
    made = agentrl("models", "fixture", "llama3.1", str(tmp_path / "llama"))
    assert made.returncode == 0, made.stderr
    result = agentrl("tasks", "render", "arith-python", "--model", str(tmp_path / "llama"), "-f", "native", "--json")
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["step"] == 0 and record["done"] == "answer" and record["score"] == 1.0
    tokenizer = load_tokenizer(tmp_path / "llama")
    first = tokenizer.decode(record["steps"][0]["action_ids"])
    assert first.startswith('{"name": "python", "parameters": {"code": ') and first.endswith("<|eot_id|>")
    assert tokenizer.decode(record["steps"][0]["obs_ids"]).startswith("<|start_header_id|>ipython<|end_header_id|>")


def test_render_says_in_one_line_when_a_model_has_no_chat_template(agentrl, tmp_path):  # noqa: F811
    agentrl("models", "fixture", "qwen2.5", str(tmp_path / "qwen"))
    config = json.loads((tmp_path / "qwen" / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (tmp_path / "qwen" / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "qwen" / "chat_template.jinja").unlink(missing_ok=True)
    result = agentrl("tasks", "render", "arith-python", "--model", str(tmp_path / "qwen"), "-f", "native")
    assert result.returncode == 2
    assert "no chat template" in result.stderr and len(result.stderr.strip().splitlines()) == 1
