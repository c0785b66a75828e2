from agentrl.rollout.parsers import FORMATS, FinalAnswer, ParseError, ToolCall, extract_answer

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
