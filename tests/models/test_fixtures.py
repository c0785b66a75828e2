"""The offline model fixtures: real architectures, tokenizer conventions and official chat templates, loaded back."""

from __future__ import annotations

import pytest
import torch
from jinja2.exceptions import TemplateError
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from agentrl.errors import AgentRLError
from agentrl.models.fixtures import FIXTURES, build_fixture, chat_template

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "python",
            "description": "Run Python code.",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        },
    }
]
CALL = {"type": "function", "function": {"name": "python", "arguments": {"code": "print(1)"}}}
CONVERSATION = [
    {"role": "system", "content": "Solve it with Python."},
    {"role": "user", "content": "What is 1?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": "1"},
    {"role": "assistant", "content": "\\boxed{1}"},
]
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA_SPECIAL = [
    *["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"],
    *["<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"],
]
EXPECT = {
    "qwen2.5": {
        "arch": "Qwen2ForCausalLM",
        "special": QWEN_SPECIAL,
        "added": ["<tool_call>", "</tool_call>"],
        "eos": "<|im_end|>",
        "pad": "<|endoftext|>",
        "bos": None,
        "stops": ["<|im_end|>", "<|endoftext|>"],
        "landmarks": [
            "<|im_start|>system\nSolve it with Python.\n\n# Tools\n\nYou may call one or more functions to assist "
            "with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n"
            '<tools>\n{"type": "function", "function": {"name": "python", "description": "Run Python code.", ',
            '<|im_start|>assistant\n<tool_call>\n{"name": "python", "arguments": {"code": "print(1)"}}\n</tool_call>'
            "<|im_end|>\n",
            "<|im_start|>user\n<tool_response>\n1\n</tool_response><|im_end|>\n",
            "<|im_start|>assistant\n\\boxed{1}<|im_end|>\n",
        ],
        "hello": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    },
    "qwen3": {
        "arch": "Qwen3ForCausalLM",
        "special": QWEN_SPECIAL,
        "added": ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"],
        "eos": "<|im_end|>",
        "pad": "<|endoftext|>",
        "bos": None,
        "stops": ["<|im_end|>", "<|endoftext|>"],
        "landmarks": [
            "<|im_start|>system\nSolve it with Python.\n\n# Tools\n\n",
            '<|im_start|>assistant\n<tool_call>\n{"name": "python", "arguments": {"code": "print(1)"}}\n</tool_call>'
            "<|im_end|>\n",
            "<|im_start|>user\n<tool_response>\n1\n</tool_response><|im_end|>\n",
            "<|im_start|>assistant\n<think>\n\n</think>\n\n\\boxed{1}<|im_end|>\n",
        ],
        "hello": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    },
    "llama3.1": {
        "arch": "LlamaForCausalLM",
        "special": LLAMA_SPECIAL,
        "added": [],
        "eos": "<|eot_id|>",
        "pad": "<|finetune_right_pad_id|>",
        "bos": "<|begin_of_text|>",
        "stops": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
        "landmarks": [
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nSolve it with Python.<|eot_id|>",
            "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON",
            '"parameters": {\n            "type": "object",',  # the tools, indented, in the first user message
            "What is 1?<|eot_id|>",
            '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "python", "parameters": {"code": "print(1)"}}'
            "<|eot_id|>",
            '<|start_header_id|>ipython<|end_header_id|>\n\n"1"<|eot_id|>',  # the template tojson's string content
            "<|start_header_id|>assistant<|end_header_id|>\n\n\\boxed{1}<|eot_id|>",
        ],
        "hello": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    },
}


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    """kind -> (directory, tokenizer, model), each built once and loaded back with the Auto classes, offline."""
    loaded = {}

    def _load(kind):
        if kind not in loaded:
            path = build_fixture(kind, tmp_path_factory.mktemp(kind))
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            loaded[kind] = (path, tokenizer, AutoModelForCausalLM.from_pretrained(path, local_files_only=True))
        return loaded[kind]

    return _load


@pytest.mark.parametrize("kind", FIXTURES)
def test_architecture_and_ids(load, kind):
    path, tok, model = load(kind)
    want = EXPECT[kind]
    assert type(model).__name__ == want["arch"] and model.dtype == torch.float32
    assert model.config.vocab_size == len(tok) and model.config.num_key_value_heads == 2
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == (want["eos"], want["pad"], want["bos"])
    stops = tok.convert_tokens_to_ids(want["stops"])
    assert GenerationConfig.from_pretrained(path, local_files_only=True).eos_token_id == stops
    assert model.config.pad_token_id == tok.pad_token_id
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tied == kind.startswith("qwen")
    if kind == "qwen3":
        assert model.config.head_dim == 16


@pytest.mark.parametrize("kind", FIXTURES)
def test_special_and_added_tokens_are_single_ids(load, kind):
    _, tok, _ = load(kind)
    for token in EXPECT[kind]["special"] + EXPECT[kind]["added"]:
        token_id = tok.convert_tokens_to_ids(token)
        assert tok.encode(f"a{token}b", add_special_tokens=False)[1:-1] == [token_id] != [tok.unk_token_id]
    text = 'naïve café 😀 → x = [1, 22, 333]\n\tdef f():\n        return "ok"'
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text  # byte-level: every byte encodes


@pytest.mark.parametrize("kind", ["qwen2.5", "qwen3"])
def test_qwen_tool_call_tags_survive_skip_special_tokens(load, kind):
    _, tok, _ = load(kind)
    call = '<tool_call>\n{"name": "python", "arguments": {"code": "print(1)"}}\n</tool_call>'
    ids = tok.encode(f"<|im_start|>assistant\n{call}<|im_end|><|endoftext|>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == f"assistant\n{call}"


def test_llama_bos_once_on_encode_and_in_the_chat_template(load):
    _, tok, _ = load("llama3.1")
    assert tok.encode("hi")[0] == tok.bos_token_id and tok.encode("hi", add_special_tokens=False)[0] != tok.bos_token_id
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=True)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok.decode(tok.encode("<|python_tag|>x<|eom_id|>"), skip_special_tokens=True) == "x"


@pytest.mark.parametrize("kind", FIXTURES)
def test_chat_template_renders_the_official_format(load, kind):
    _, tok, _ = load(kind)
    rendered = tok.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    for landmark in EXPECT[kind]["landmarks"]:
        assert landmark in rendered
    hello = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(hello, tokenize=False, add_generation_prompt=True) == EXPECT[kind]["hello"]


@pytest.mark.parametrize("kind", FIXTURES)
def test_source_comment_renders_as_nothing(load, kind):
    _, tok, _ = load(kind)
    template = chat_template(kind)
    first, bare = template.split("\n", 1)
    assert first.startswith("{#- source: ") and first.endswith(" -#}") and "source" not in bare
    for kwargs in ({"tools": TOOLS}, {"add_generation_prompt": True}):
        with_comment = tok.apply_chat_template(CONVERSATION, tokenize=False, chat_template=template, **kwargs)
        assert with_comment == tok.apply_chat_template(CONVERSATION, tokenize=False, chat_template=bare, **kwargs)


def test_qwen3_thinking(load):
    _, tok, _ = load("qwen3")

    def render(messages, **kwargs):
        return tok.apply_chat_template(messages, tokenize=False, **kwargs)

    earlier = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nx"},
        {"role": "user", "content": "q2"},
    ]
    assert "hmm" not in render(earlier)  # thinking of turns before the last user query is dropped
    assert "<|im_start|>assistant\nx<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n" in render(earlier)
    assert render(earlier[:2]).endswith("<|im_start|>assistant\n<think>\nhmm\n</think>\n\nx<|im_end|>\n")
    reasoned = [earlier[0], {"role": "assistant", "content": "x", "reasoning_content": "r"}]
    assert render(reasoned).endswith("<|im_start|>assistant\n<think>\nr\n</think>\n\nx<|im_end|>\n")
    no_think = render(earlier, add_generation_prompt=True, enable_thinking=False)
    assert no_think.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_llama_template_rules(load):
    _, tok, _ = load("llama3.1")
    two_calls = [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": [CALL, CALL]}]
    with pytest.raises(TemplateError, match="only supports single tool-calls"):
        tok.apply_chat_template(two_calls, tools=TOOLS, tokenize=False)
    in_system = tok.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False, tools_in_user_message=False)
    assert "Today Date: 26 Jul 2024\n\nYou have access to the following functions." in in_system


@pytest.mark.parametrize("kind", FIXTURES)
def test_forward_pass_on_the_encoded_conversation(load, kind):
    _, tok, model = load(kind)
    ids = tok.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=True)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tok)) and len(ids) > 50
    assert torch.isfinite(logits).all()


def test_same_seed_same_fixture_and_overrides_apply(tmp_path):
    first, again = build_fixture("qwen2.5", tmp_path / "a"), build_fixture("qwen2.5", tmp_path / "b")
    other = build_fixture("qwen2.5", tmp_path / "c", seed=1, hidden_size=32)
    weights = [load_file(path / "model.safetensors") for path in (first, again, other)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    assert (first / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    assert weights[2]["model.embed_tokens.weight"].shape[1] == 32


def test_unknown_kind_names_the_known_ones(tmp_path):
    with pytest.raises(AgentRLError, match="qwen2.5, qwen3, llama3.1"):
        build_fixture("gpt2", tmp_path)
