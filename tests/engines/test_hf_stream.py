"""The HF engine's continuous batching: rows that join a running decode batch get what they get alone."""

from __future__ import annotations

import pytest
import torch

from agentrl.engines import HFEngine, SamplingParams
from agentrl.engines.base import StopRule

GREEDY = SamplingParams(8, greedy=True)
# rows stop after 1..8 tokens (as on tool calls of different lengths)
STOPS = StopRule(frozenset(range(10_000)), lambda ids: len(ids) >= 1 + (sum(ids) % 8))


class MaskWidths:
    """Records the attention-mask width of every decode step (forwards fed one token per row)."""

    def __init__(self, model):
        self.widths: list[int] = []
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if kwargs["input_ids"].shape[1] == 1:
            self.widths.append(kwargs["attention_mask"].shape[1])


@pytest.fixture()
def engine(tiny_model, tokenizer):
    return HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512)


def prompts(n: int, seed: int = 0) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randint(5, 300, (int(torch.randint(3, 60, (1,), generator=gen)),), generator=gen).tolist()
        for _ in range(n)
    ]


def test_rows_joining_a_running_batch_get_what_each_gets_alone(engine):
    queue = prompts(24)
    stream = engine.stream(GREEDY, STOPS)
    got, steps = {}, 0
    while queue or stream:  # two rows join every step, whatever the batch is doing
        for _ in range(min(2, len(queue))):
            stream.add(len(got) + len(stream), queue.pop(0))
        got.update(stream.step())
        steps += 1
    assert sorted(got) == list(range(24))
    for tag, prompt in enumerate(prompts(24)):
        alone = engine.generate([prompt], GREEDY, STOPS)[0]
        assert got[tag].token_ids == alone.token_ids and got[tag].finish_reason == alone.finish_reason
        assert got[tag].logprobs == pytest.approx(alone.logprobs, abs=1e-4)
    assert steps < sum(len(g.token_ids) for g in got.values())  # rows did decode together


def test_a_conversation_continued_in_the_stream_prefills_only_its_new_tokens(engine, tiny_model):
    fed: list[int] = []
    tiny_model.register_forward_pre_hook(
        lambda m, a, kw: fed.append(kw["input_ids"].numel()) if kw["input_ids"].shape[1] > 1 else None,
        with_kwargs=True,
    )
    first, other = prompts(2, seed=1)
    stream = engine.stream(GREEDY, StopRule(frozenset(range(10_000)), lambda ids: len(ids) >= 3))
    stream.add("a", first, key="conversation")
    done = dict(stream.step() + stream.step())
    stream.add("b", other * 2)
    done.update(stream.step())  # "a" ends its turn (as on a tool call), "b" has just begun
    assert "a" in done and "b" not in done
    context = first + done["a"].token_ids + [7, 8]  # an observation
    fed.clear()
    stream.add("a2", context, key="conversation")  # the next turn joins "b", still decoding
    while stream:
        done.update(stream.step())
    assert fed == [3]  # the last generated token and the observation: the rest came from the kept prefix
    fresh = HFEngine(tiny_model, [0], 0, 512).generate([context], GREEDY, stream.stop)[0]
    assert done["a2"].token_ids == fresh.token_ids


def test_the_batch_sheds_the_padding_of_a_long_row_that_left(tiny_model, tokenizer):
    long, *short = prompts(4, seed=2)  # the long row is a quarter of the batch: it leaves once done
    long = long * 6
    # the length limit leaves the long row one token; the short rows decode 8
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, len(long) + 1)
    widths = MaskWidths(tiny_model)
    stream = engine.stream(GREEDY)
    for tag, prompt in enumerate([long, *short]):
        stream.add(tag, prompt)
    done = {}
    while stream:
        done.update(stream.step())
    assert [len(done[tag].token_ids) for tag in range(4)] == [1, 8, 8, 8]
    assert max(widths.widths) <= max(map(len, short)) + 8  # no decode step attends over the long row's width
