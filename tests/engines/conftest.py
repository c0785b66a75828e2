"""Weights for the engine tests: a tiny model that has memorised tool calls, so stop rules really fire.

A random model never writes "```python ... ```" or "<tool_call>...</tool_call>"; this one is trained to
(in a second or two), and a second copy, one update later, writes different ones: the weight-sync target.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from agentrl.config import ModelConfig
from agentrl.engines import Generation, HFEngine, SamplingParams
from agentrl.models.tiny import build_tiny_model
from agentrl.rollout.formats import chat_prompt_ids
from tests.engines.harness import loop_stop_rule

MAX_LENGTH = 160
# vLLM's CPU attention needs a head size of 32 or more: 64 wide with 2 heads.
MODEL = ModelConfig(hidden_size=64, num_layers=2, intermediate_size=128, num_heads=2, max_length=MAX_LENGTH)
TARGETS = {  # prompt -> the message model A memorises, and model B (one update later)
    "What is 6 times 7?": (
        "Let me compute.\n```python\nprint(6 * 7)\n```\nSo \\boxed{42}",
        "I will run it.\n```python\nprint(6 * 8)\n```\nSo \\boxed{48}",
    ),
    "Find the capital of France.": (
        '<tool_call>{"name": "s", "arguments": {}}</tool_call> ok',
        '<tool_call>{"name": "t", "arguments": {}}</tool_call> no',
    ),
    "Give the answer.": ("\\boxed{7}<|im_end|>", "It is \\boxed{8}<|im_end|>"),
}


@dataclass
class Weights:
    tokenizer: object
    model_a: torch.nn.Module
    model_b: torch.nn.Module
    dir_a: Path
    dir_b: Path
    tool_prompts: list[list[int]]
    """The memorised prompts: a fenced call, a hermes call, an answer ending in EOS."""
    prompts: list[list[int]]
    """Mixed batch: the memorised prompts, arith problems, a long prompt, prompts at the length limit."""


@contextmanager
def one_torch_thread():
    """Two torch threads on a busy two-core machine run ~30x slower than one (they spin waiting for each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def memorise(model, tokenizer, pairs: list[tuple[list[int], str]], steps: int, lr: float = 1e-2) -> None:
    """Fit `model` to each (prompt ids, target message) pair: NLL on the target tokens only, one padded batch."""
    seqs = [(prompt, tokenizer.encode(text, add_special_tokens=False)) for prompt, text in pairs]
    width = max(len(p) + len(t) for p, t in seqs)
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
    labels = torch.full((len(seqs), width), -100)
    for row, (prompt, target) in enumerate(seqs):
        ids[row, : len(prompt) + len(target)] = torch.tensor(prompt + target)
        labels[row, len(prompt) : len(prompt) + len(target)] = torch.tensor(target)
    mask = (labels != -100) | (torch.arange(width) < torch.tensor([len(p) for p, _ in seqs])[:, None])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


GREEDY = SamplingParams(64, greedy=True)


def generations(vllm: dict, case: str) -> list[Generation]:
    """A case's generations as the vLLM side returned them."""
    return [Generation(**g) for g in vllm["results"][case]]


def ids_and_finish(gens: list[Generation]) -> list[tuple[list[int], str]]:
    return [(g.token_ids, g.finish_reason) for g in gens]


def hf_generate(model, tokenizer, prompts, params: SamplingParams, stop_format: str | None = None) -> list[Generation]:
    stop = loop_stop_rule(stop_format, tokenizer, MAX_LENGTH) if stop_format else None
    engine = HFEngine(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, MAX_LENGTH)
    return engine.generate(prompts, params, stop)


@pytest.fixture(scope="session")
def weights(tokenizer, arith_task, tmp_path_factory) -> Weights:
    tool_prompts = [chat_prompt_ids(tokenizer, [{"role": "user", "content": q}]) for q in TARGETS]
    with torch.random.fork_rng(), one_torch_thread():
        torch.manual_seed(0)
        model_a = build_tiny_model(tokenizer, MODEL)
        pairs = list(zip(tool_prompts, TARGETS.values(), strict=True))
        memorise(model_a, tokenizer, [(p, a) for p, (a, _) in pairs], steps=150)
        model_b = copy.deepcopy(model_a)  # one update later: same start, different calls
        memorise(model_b, tokenizer, [(p, b) for p, (_, b) in pairs], steps=60)
    arith = [chat_prompt_ids(tokenizer, arith_task.messages(p)) for p in arith_task.problems("test", 3, 0)]
    long = [i for p in arith for i in p][:110]  # spans several KV blocks: the prefix cache must not go stale
    filler = (arith[0] * 8)[: MAX_LENGTH - 3]
    prompts = [*tool_prompts, *arith, long, filler, (arith[1] * 8)[:MAX_LENGTH]]
    root = tmp_path_factory.mktemp("engine-weights")
    for name, model in (("a", model_a), ("b", model_b)):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return Weights(tokenizer, model_a, model_b, root / "a", root / "b", tool_prompts, prompts)
