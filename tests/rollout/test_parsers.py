from agentrl.rollout.parsers import (
    FORMATS,
    FinalAnswer,
    ParseError,
    ToolCall,
    extract_answer,
    parse_hermes_calls,
    parse_llama3_json,
)

FENCED, HERMES = FORMATS["fenced"], FORMATS["hermes"]


def test_fenced_call_and_completion():
    text = "let me compute\n```python\nprint(2 * 3)\n```"
    assert FENCED.call_complete(text)
    assert FENCED.parse(text) == ToolCall("python", {"code": "print(2 * 3)\n"})
    assert not FENCED.call_complete("```python\nprint(2")


def test_fenced_unclosed_block_is_a_parse_error():
    assert isinstance(FENCED.parse("```python\nprint(2"), ParseError)


def test_final_answers():
    assert FENCED.parse("so \\boxed{42}") == FinalAnswer("42")
    assert FENCED.parse("no answer here") == FinalAnswer(None)
    assert extract_answer("\\boxed{\\frac{1}{2}} then \\boxed{7}") == "7"
    assert extract_answer("<answer> 12 </answer>") == "12"
    assert extract_answer("\\boxed{unbalanced") is None


def test_hermes_calls_and_errors():
    ok = '<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>'
    assert HERMES.call_complete(ok)
    assert HERMES.parse(ok) == ToolCall("search", {"query": "x"})
    assert "valid JSON" in HERMES.parse("<tool_call>{name: x}</tool_call>").message
    assert "name" in HERMES.parse('<tool_call>["x"]</tool_call>').message
    assert "arguments" in HERMES.parse('<tool_call>{"name": "x", "arguments": 3}</tool_call>').message
    assert isinstance(HERMES.parse("<tool_call>{"), ParseError)


def test_hermes_parser_reads_every_call_in_order_outside_the_think_block():
    text = (
        "<think>\nmaybe <tool_call>{not this}</tool_call>\n</think>\n\n"
        '<tool_call>\n{"name": "python", "arguments": {"code": "1"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "search", "arguments": {"query": "x"}}\n</tool_call>'
    )
    assert parse_hermes_calls(text) == [ToolCall("python", {"code": "1"}), ToolCall("search", {"query": "x"})]
    assert parse_hermes_calls("<think>\n\\boxed{1}\n</think>\n\nso \\boxed{2}") == FinalAnswer("2")
    assert parse_hermes_calls('<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call><tool_call>{') == ParseError(
        "unclosed <tool_call> tag"
    )
    assert "valid JSON" in parse_hermes_calls("<tool_call>\n{oops}\n</tool_call>").message


def test_llama3_json_parser_reads_json_messages_as_calls_and_prose_as_the_answer():
    one = '{"name": "python", "parameters": {"code": "print(1)"}}'
    assert parse_llama3_json(one) == [ToolCall("python", {"code": "print(1)"})]
    two = '{"name": "a", "parameters": {"x": 1}}; {"name": "b", "arguments": {}}'
    assert parse_llama3_json(two) == [ToolCall("a", {"x": 1}), ToolCall("b", {})]
    assert parse_llama3_json("The answer is \\boxed{7}.") == FinalAnswer("7")
    assert "valid JSON" in parse_llama3_json('{"name": "a", "parameters": ').message
    assert "name" in parse_llama3_json('{"parameters": {}}').message
    assert "parameters" in parse_llama3_json('{"name": "a", "parameters": [1]}').message
