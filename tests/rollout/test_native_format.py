"""Native format: a trajectory's ids equal the model's own template rendering of the same conversation."""

from __future__ import annotations

import pytest

from agentrl.config import RolloutConfig
from agentrl.engines import Generation
from agentrl.errors import AgentRLError
from agentrl.models.fixtures import build_fixture
from agentrl.models.loading import load_tokenizer, stop_token_ids
from agentrl.models.tiny import CHAT_TEMPLATE
from agentrl.rollout.chain import AgentLoop
from agentrl.rollout.formats import NativeFormat
from agentrl.tools.base import ToolResult, function_schema


class EchoPython:
    """A python tool double whose output names the code it ran."""

    name = "python"
    description = "Run Python code."
    schema = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}

    def open_state(self):
        return None

    def run(self, args, state):
        return ToolResult(f"ran {args['code']}")


class Search(EchoPython):
    name = "search"
    description = "Search the documents."
    schema = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}

    def run(self, args, state):
        return ToolResult(f"found {args['query']}")


TOOLS = {"python": EchoPython(), "search": Search()}
SCHEMAS = [function_schema(t) for t in TOOLS.values()]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixtures")
    return {kind: load_tokenizer(build_fixture(kind, root / kind)) for kind in ("qwen2.5", "qwen3", "llama3.1")}


def loop_for(task, tokenizer, max_turns=5):
    cfg = RolloutConfig(format="native", max_turns=max_turns, max_new_tokens=96, max_tool_calls=8)
    return AgentLoop(task, tokenizer, TOOLS, cfg, max_length=4096)


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


def python(code):
    return {"tool_calls": [call("python", code=code)]}


def conversation(script, outputs):
    """The OpenAI-style messages of a scripted episode: each message, then one tool message per output."""
    messages = []
    for message, results in zip(script, outputs, strict=True):
        said = {"role": "assistant", "content": message.get("content", "")}
        if message.get("tool_calls"):
            said["tool_calls"] = [{"type": "function", "function": c} for c in message["tool_calls"]]
        messages += [said, *({"role": "tool", "content": out} for out in results)]
    return messages


def assert_matches_the_template(traj, tokenizer, prompt, script, outputs):
    full = tokenizer.apply_chat_template(
        prompt + conversation(script, outputs), tools=SCHEMAS, tokenize=True, return_dict=True
    )["input_ids"]
    ids = traj.context_ids
    assert full[: len(ids)] == ids
    assert tokenizer.decode(full[len(ids) :]).strip() == ""  # the template's newline after the last turn
    # trained exactly on what the model generated, each message through its end-of-turn token
    generated = [t for s in traj.steps for t in s.action_ids]
    assert [t for t, m in zip(traj.response_ids, traj.response_mask, strict=True) if m] == generated
    assert sum(traj.response_mask) == len(generated)


EPISODES = {
    "one turn": ([{"content": "It is \\boxed{4}."}], [[]]),
    "two turns": ([python("print(2 + 2)"), {"content": "\\boxed{4}"}], [["ran print(2 + 2)"], []]),
    "four turns": (
        [python("a = 6"), python("b = 7"), {"tool_calls": [call("search", query="times")]}, {"content": "\\boxed{42}"}],
        [["ran a = 6"], ["ran b = 7"], ["found times"], []],
    ),
}


@pytest.mark.parametrize("kind", ["qwen2.5", "llama3.1"])
@pytest.mark.parametrize("episode", sorted(EPISODES))
def test_append_only_templates_render_the_trajectory_token_for_token(arith_task, fixtures, kind, episode):
    tokenizer = fixtures[kind]
    script, outputs = EPISODES[episode]
    problem = arith_task.problems("train", 1)[0]
    loop = loop_for(arith_task, tokenizer)
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: script}))
    assert_matches_the_template(traj, tokenizer, arith_task.messages(problem, instructions=True), script, outputs)
    end = loop.format.template.end_of_turn
    assert all(s.action_ids[-1] == end for s in traj.steps)
    assert traj.done == "answer" and len(traj.steps) == len(script)


def test_two_calls_in_one_message_each_get_their_own_tool_message(arith_task, fixtures):
    tokenizer = fixtures["qwen2.5"]
    script = [{"tool_calls": [call("python", code="x = 1"), call("search", query="y")]}, {"content": "\\boxed{1}"}]
    problem = arith_task.problems("train", 1)[0]
    loop = loop_for(arith_task, tokenizer)
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: script}))
    assert [c["name"] for c in traj.steps[0].calls] == ["python", "search"]
    assert traj.num_tool_calls == 2
    outputs = [["ran x = 1", "found y"], []]
    assert_matches_the_template(traj, tokenizer, arith_task.messages(problem, instructions=True), script, outputs)


@pytest.mark.parametrize(
    ("kind", "unreadable"), [("qwen2.5", "<tool_call>\n{oops}\n</tool_call>"), ("llama3.1", "{oops}")]
)
def test_an_unreadable_call_comes_back_as_a_tool_message_and_the_episode_goes_on(
    arith_task, fixtures, kind, unreadable
):
    tokenizer = fixtures[kind]
    script = [{"content": unreadable}, python("print(1)"), {"content": "\\boxed{1}"}]
    problem = arith_task.problems("train", 1)[0]
    loop = loop_for(arith_task, tokenizer)
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: script}))
    assert traj.steps[0].error == "parse_error" and traj.steps[0].observation.startswith("error: tool call is not")
    outputs = [[traj.steps[0].observation], ["ran print(1)"], []]
    assert_matches_the_template(traj, tokenizer, arith_task.messages(problem, instructions=True), script, outputs)
    assert traj.done == "answer"


def test_qwen3_keeps_the_sampled_think_tokens_where_a_re_render_drops_them(arith_task, fixtures):
    tokenizer = fixtures["qwen3"]
    problem = arith_task.problems("train", 1)[0]
    prompt = arith_task.messages(problem, instructions=True)
    loop = loop_for(arith_task, tokenizer)
    assert not loop.format.template.append_only
    # thinking within the episode (after its one user message): Qwen3's re-render keeps it, token for token
    thought = [{"content": "<think>\nuse python\n</think>\n\n", **python("print(4)")}, {"content": "\\boxed{4}"}]
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: thought}))
    assert "use python" in tokenizer.decode(traj.steps[0].action_ids)
    assert_matches_the_template(traj, tokenizer, prompt, thought, [["ran print(4)"], []])
    # an empty think block in an earlier turn: the re-render drops it, the trajectory keeps what was sampled
    plain = [python("print(4)"), {"content": "\\boxed{4}"}]
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: plain}))
    assert tokenizer.decode(traj.steps[0].action_ids).startswith("<think>\n\n</think>\n\n<tool_call>")
    re_rendered = tokenizer.apply_chat_template(prompt + conversation(plain, [["ran print(4)"], []]), tools=SCHEMAS)
    assert tokenizer.decode(traj.context_ids).count("<think>") == 2
    assert tokenizer.decode(re_rendered).count("<think>") == 1


def test_a_chatml_template_without_tools_gets_them_in_agentrl_words(arith_task, tokenizer):
    assert tokenizer.chat_template == CHAT_TEMPLATE
    fmt = NativeFormat(tokenizer, SCHEMAS)
    assert (fmt.template.renders_tools, fmt.template.renders_tool_calls, fmt.tool_parser) == (False, False, "hermes")
    prompt = tokenizer.decode(fmt.prompt_ids([{"role": "user", "content": "2+2?"}]))
    assert prompt.startswith("<|im_start|>system\nYou can call these tools") and '"name": "python"' in prompt
    written = tokenizer.decode(fmt.message_ids(python("print(1)"), final=False))
    assert written == '<tool_call>\n{"name": "python", "arguments": {"code": "print(1)"}}\n</tool_call><|im_end|>'
    fed = tokenizer.decode(fmt.observation_ids([("python", "1")]))
    assert fed == "\n<|im_start|>tool\n1<|im_end|>\n<|im_start|>assistant\n"


def test_a_message_cut_at_the_token_limit_ends_the_trajectory(arith_task, fixtures):
    tokenizer = fixtures["qwen2.5"]
    loop = loop_for(arith_task, tokenizer)
    call_ids = loop.format.message_ids(python("print(1)"), final=False)[:-1]  # a whole call, no <|im_end|>
    policy = lambda trajs: [Generation(call_ids, [0.0] * len(call_ids), "length") for _ in trajs]  # noqa: E731
    (traj,) = loop.run(arith_task.problems("train", 1), 1, policy)
    assert (traj.steps[-1].finish, traj.done, traj.num_tool_calls) == ("length", "no_answer", 0)


def test_turns_stop_at_every_end_of_turn_id_of_the_model(fixtures, tmp_path):
    qwen, llama = fixtures["qwen2.5"], fixtures["llama3.1"]
    assert set(stop_token_ids(qwen)) == set(qwen.convert_tokens_to_ids(["<|im_end|>"]))
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(build_fixture("llama3.1", tmp_path / "llama"))
    ids = set(llama.convert_tokens_to_ids(["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"]))
    assert set(stop_token_ids(llama, model)) == ids


BROKEN_TEMPLATES = {
    "no template": (None, "has no chat template"),
    "drops tool messages": (
        "{% for m in messages %}{% if m.role != 'tool' %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        "drops `tool` messages",
    ),
    "raises on tool messages": (
        "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('roles must alternate') }}{% endif %}"
        "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
        "raises on `tool` messages",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_TEMPLATES))
def test_a_template_that_cannot_carry_tool_results_is_refused_in_one_line(tokenizer, case):
    template, message = BROKEN_TEMPLATES[case]
    broken = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|im_end|>")
    broken.chat_template = template
    with pytest.raises(AgentRLError, match=message) as err:
        NativeFormat(broken, SCHEMAS)
    assert "rollout.format=fenced or hermes" in str(err.value) and "\n" not in str(err.value)
