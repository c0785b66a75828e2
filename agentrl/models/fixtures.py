"""Offline test fixtures: tiny random-weight causal LMs in real architectures, with real chat templates.

For tests and benchmarks of each model family's native tool-calling format where the hub cannot be reached.
`build_fixture(kind, dir)` writes a `save_pretrained` directory (model, tokenizer, generation config) that
`AutoModelForCausalLM` / `AutoTokenizer` load offline: a Qwen2 / Qwen3 / Llama model with random weights (the
text it generates is noise), a small byte-level BPE tokenizer with the real model's pre-tokenizer, special tokens
and stop tokens, and the official chat template (`chat_templates/*.jinja`, copied verbatim, source noted on top).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LlamaConfig,
    PreTrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2Tokenizer,
    Qwen3Config,
)

from agentrl.errors import AgentRLError

FIXTURES = ("qwen2.5", "qwen3", "llama3.1")
VOCAB_SIZE = 1000  # byte-level BPE merges included; the added tokens come on top

# Qwen2's and Llama 3's split regex; they differ in the digit groups (`%s`)
_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}%s"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SAMPLE = """\
The assistant reads the question, thinks step by step, and calls a tool when it needs one. It checks the result
before it answers. What is the capital of France? Paris. How many days are there in a leap year? There are 366.
You are a helpful assistant. Please answer the user's question; if you don't know, say so. I'm sure we'll see
that the answer is correct, and they've checked it twice. Put the final answer in \\boxed{} at the end.
Search the web for recent news, read the page, then summarize it in two sentences for the user.
A train leaves the station at 3 pm and travels 120 km at 60 km per hour; when does it arrive? At 5 pm.
The function returned an error, so the agent fixed the bug, ran the tests again, and reported the output.
Numbers such as 3.14159, 2.71828 and 1,000,000 appear in math problems, tables, prices and dates like 2024-07-26.

def solve(numbers: list[int]) -> int:
    \"\"\"Return the sum of the even numbers.\"\"\"
    total = 0
    for n in numbers:
        if n % 2 == 0:
            total += n
    return total

class Counter:
    def __init__(self, start: int = 0) -> None:
        self.value = start

    def step(self, by: int = 1) -> int:
        self.value += by
        return self.value

import math
print(math.sqrt(16), sum(range(10)), [x * x for x in range(5)], "hello, world".split(","))
result = {"status": "ok", "value": 42, "items": [1, 2, 3], "error": null, "done": true}
"""


@dataclass(frozen=True)
class _Spec:
    config: type[PreTrainedConfig]
    arch: dict[str, object]  # the real model's architecture settings that a tiny model keeps
    added: tuple[str, ...] = ("<tool_call>", "</tool_call>")  # not special: decode(skip_special_tokens=True) keeps
    special: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids after the BPE vocabulary
    digits: str = ""  # how the pre-tokenizer groups digits: one by one (Qwen), up to three (Llama 3)
    bos: str | None = None  # the tokenizer's; Llama 3's post-processor prepends it on plain encode
    eos: str = "<|im_end|>"
    pad: str = "<|endoftext|>"
    stops: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")  # generation_config.eos_token_id
    config_bos: str = "<|endoftext|>"  # config.json's bos/eos ids, as in the real model's
    config_eos: tuple[str, ...] = ("<|im_end|>",)


_QWEN_ARCH = {"rope_parameters": {"rope_type": "default", "rope_theta": 1e6}, "tie_word_embeddings": True}
_LLAMA_STOPS = ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")
_SPECS = {
    "qwen2.5": _Spec(Qwen2Config, _QWEN_ARCH),
    "qwen3": _Spec(
        Qwen3Config,
        {**_QWEN_ARCH, "head_dim": 16},
        added=("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"),
    ),
    "llama3.1": _Spec(
        LlamaConfig,
        {"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}, "rms_norm_eps": 1e-5},
        added=(),
        special=tuple(
            "<|begin_of_text|> <|end_of_text|> <|finetune_right_pad_id|> <|start_header_id|> <|end_header_id|> "
            "<|eom_id|> <|eot_id|> <|python_tag|>".split()
        ),
        digits="{1,3}",
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
        stops=_LLAMA_STOPS,
        config_bos="<|begin_of_text|>",
        config_eos=_LLAMA_STOPS,
    ),
}


def _spec(kind: str) -> _Spec:
    if kind not in _SPECS:
        raise AgentRLError(f"unknown model fixture {kind!r}; known: {', '.join(FIXTURES)}")
    return _SPECS[kind]


def chat_template(kind: str) -> str:
    """The official chat template of `kind`, verbatim after a one-line source comment that renders as nothing."""
    _spec(kind)
    return (Path(__file__).parent / "chat_templates" / f"{kind}.jinja").read_text(encoding="utf-8")


def build_fixture_tokenizer(kind: str, model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    """A ~1k-token byte-level BPE (every byte encodes) with `kind`'s pre-tokenizer, special tokens and template."""
    spec, template = _spec(kind), chat_template(kind)
    tok = Tokenizer(models.BPE())
    if kind.startswith("qwen"):  # Qwen's tokenizer.json normalizes to NFC; Llama 3's has no normalizer
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT % spec.digits), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator([_SAMPLE, template, " ".join(str(i * 7919 % 100003) for i in range(200))], trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec.special])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec.added])
    extra = [t for t in spec.special if t not in (spec.eos, spec.pad, spec.bos)]
    if spec.bos is None:  # Qwen: Qwen2Tokenizer, no BOS, like the real tokenizer_config.json
        fast = Qwen2Tokenizer(
            tokenizer_object=tok, bos_token=None, eos_token=spec.eos, pad_token=spec.pad, unk_token=None,
            extra_special_tokens=extra, errors="replace", clean_up_tokenization_spaces=False,
            model_max_length=model_max_length,
        )  # fmt: skip
    else:  # Llama 3: a plain fast tokenizer whose post-processor prepends <|begin_of_text|>
        tok.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single=f"{spec.bos} $A",
                    pair=f"{spec.bos} $A {spec.bos} $B",
                    special_tokens=[(spec.bos, tok.token_to_id(spec.bos))],
                ),
            ]
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token=spec.bos, eos_token=spec.eos, pad_token=spec.pad,
            extra_special_tokens=extra, clean_up_tokenization_spaces=True, model_max_length=model_max_length,
        )  # fmt: skip
    fast.chat_template = template
    return fast


def build_fixture(kind: str, out_dir: str | Path, seed: int = 0, **config_overrides) -> Path:
    """Write a random-weight `kind` model with its tokenizer and generation config to `out_dir`; return it.

    `config_overrides` go to the model config (e.g. `hidden_size=128`); the same `seed` gives the same weights.
    """
    spec, out_dir = _spec(kind), Path(out_dir)
    settings = {
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 2048, **spec.arch, **config_overrides,
    }  # fmt: skip
    tokenizer = build_fixture_tokenizer(kind, settings["max_position_embeddings"])
    ids = tokenizer.convert_tokens_to_ids
    stops = [ids(t) for t in spec.stops]
    eos = [ids(t) for t in spec.config_eos]
    config = spec.config(
        vocab_size=len(tokenizer), bos_token_id=ids(spec.config_bos), eos_token_id=eos[0] if len(eos) == 1 else eos,
        pad_token_id=tokenizer.pad_token_id, dtype="float32", **settings,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config).float()
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
