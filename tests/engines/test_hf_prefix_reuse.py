"""The HF engine's multi-turn prefix reuse: same tokens and log-probs as a full re-prefill, far fewer fed."""

from __future__ import annotations

import pytest
import torch

from agentrl.engines import HFEngine, SamplingParams
from agentrl.engines.base import StopRule
from agentrl.engines.hf import prefill_groups

# every token triggers the check, which stops a row after 3 tokens: turns end "stop", as on a tool call
STOP = StopRule(frozenset(range(10_000)), lambda ids: len(ids) >= 3)
GREEDY = SamplingParams(8, greedy=True)


class FedCounter:
    """Counts the input ids each generate call's prefill forwards are fed (the forwards wider than one token:
    decode steps feed one per row, and every prompt here has at least 3 new tokens)."""

    def __init__(self, model):
        self.prefilled: list[int] = []
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            self.prefilled[-1] += kwargs["input_ids"].numel()

    def next_call(self) -> None:
        self.prefilled.append(0)


def conversation(engine: HFEngine, counter: FedCounter, prompts, keys, turns: int = 4):
    contexts, outputs, sizes = [list(p) for p in prompts], [], []
    for turn in range(turns):
        counter.next_call()
        sizes.append(sum(map(len, contexts)))
        gens = engine.generate(contexts, GREEDY, STOP, keys)
        outputs.append(gens)
        for row, gen in enumerate(gens):
            contexts[row] += gen.token_ids + [5 + turn, 6 + row]  # an "observation"
    return outputs, sizes


@pytest.fixture()
def prompts():
    torch.manual_seed(0)
    return [torch.randint(5, 300, (n,)).tolist() for n in (7, 19, 12, 30)]


def test_reuse_gives_the_same_tokens_and_logprobs_and_prefills_only_new_tokens(tiny_model, tokenizer, prompts):
    counter = FedCounter(tiny_model)
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512)
    plain, sizes = conversation(engine, counter, prompts, keys=None)
    fed_plain = counter.prefilled[:]
    reused, _ = conversation(engine, counter, prompts, keys=["a", "b", "c", "d"])
    fed_reused = counter.prefilled[len(fed_plain) :]
    for turn_plain, turn_reused in zip(plain, reused, strict=True):
        for a, b in zip(turn_plain, turn_reused, strict=True):
            assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason == "stop"
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert fed_reused[0] == fed_plain[0]  # nothing kept yet
    # later turns feed the last generated token and the observation: 3 per row, however long the context
    assert fed_reused[1:] == [4 * 3] * 3
    assert all(fed >= size for fed, size in zip(fed_plain, sizes, strict=True))  # without keys: every context whole


def test_kept_prefixes_go_with_new_weights_and_unmatched_prompts(tiny_model, tokenizer, prompts):
    counter = FedCounter(tiny_model)
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512)
    keys = ["a", "b", "c", "d"]
    counter.next_call()
    first = engine.generate(prompts, GREEDY, STOP, keys)
    engine.sync_weights(tiny_model)  # the weights changed: the kept keys and values are stale
    counter.next_call()
    contexts = [p + g.token_ids + [7] for p, g in zip(prompts, first, strict=True)]
    engine.generate(contexts, GREEDY, STOP, keys)
    assert counter.prefilled[-1] >= sum(map(len, contexts))  # everything prefilled again
    # a prompt that does not extend what its key kept (another branch) is prefilled whole, and still right
    other = [[9, 9, 9] + c for c in contexts]
    counter.next_call()
    swapped = engine.generate(other, GREEDY, STOP, keys)
    fresh = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512).generate(other, GREEDY, STOP)
    assert [g.token_ids for g in swapped] == [g.token_ids for g in fresh]
    assert counter.prefilled[-1] >= sum(map(len, other))


def test_two_halves_taking_turns_keep_their_prefixes_and_ended_conversations_are_dropped(
    tiny_model, tokenizer, prompts
):
    # the agent loop alternates two halves of its batch: each half's kept prefix must survive the other's call
    counter = FedCounter(tiny_model)
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512)
    halves = {"first": (prompts[:2], ["a", "b"]), "second": (prompts[2:], ["c", "d"])}
    contexts = {name: [list(p) for p in rows] for name, (rows, _) in halves.items()}
    for turn in range(3):
        for name, (_, keys) in halves.items():
            counter.next_call()
            gens = engine.generate(contexts[name], GREEDY, STOP, keys)
            for row, gen in enumerate(gens):
                contexts[name][row] += gen.token_ids + [5 + turn, 6 + row]
    assert counter.prefilled[2:] == [2 * 3] * 4  # after the first round: last token + observation, per row
    assert set(engine._kept) == {"a", "b", "c", "d"}
    # the second half ends: once the first half has generated twice more, nothing of it is kept
    for _ in range(2):
        gens = engine.generate(contexts["first"], GREEDY, STOP, ["a", "b"])
        contexts["first"] = [c + g.token_ids + [5, 6] for c, g in zip(contexts["first"], gens, strict=True)]
    assert set(engine._kept) == {"a", "b"}


def test_prefill_groups_split_by_length_and_cover_every_row_once():
    lengths = [100, 5, 6, 98, 7, 4]
    groups = prefill_groups(lengths, forward_cost=32)
    assert sorted(r for g in groups for r in g) == list(range(len(lengths)))
    assert [sorted(g) for g in groups] == [[1, 2, 4, 5], [0, 3]]  # short rows apart from long ones
    assert prefill_groups(lengths, forward_cost=10_000) == [[5, 1, 2, 4, 3, 0]]  # forwards dear: one batch
    assert prefill_groups([]) == []


def test_batched_rows_that_finish_early_and_leave_the_batch_give_what_each_row_alone_gives(
    tiny_model, tokenizer, prompts
):
    # rows stop after 1..8 tokens, so the batch sheds finished rows several times; prompts of mixed length
    stops = StopRule(frozenset(range(10_000)), lambda ids: len(ids) >= 1 + (sum(ids) % 8))
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512)
    many = prompts + [p[:3] for p in prompts] + [p * 3 for p in prompts]
    batched = engine.generate(many, SamplingParams(8, greedy=True), stops)
    for prompt, gen in zip(many, batched, strict=True):
        alone = engine.generate([prompt], SamplingParams(8, greedy=True), stops)[0]
        assert gen.token_ids == alone.token_ids and gen.finish_reason == alone.finish_reason
        assert gen.logprobs == pytest.approx(alone.logprobs, abs=1e-4)
    assert len({len(g.token_ids) for g in batched}) > 2  # the rows did finish at different steps


def test_copies_of_one_prompt_are_prefilled_once_and_sample_as_if_alone(tiny_model, tokenizer, prompts):
    counter = FedCounter(tiny_model)
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512)
    group = [prompts[1]] * 4 + [prompts[3]] * 4  # two GRPO groups of 4
    counter.next_call()
    gens = engine.generate(group, GREEDY, STOP)
    assert counter.prefilled == [2 * len(prompts[3])]  # two rows, padded to the longer: each distinct prompt once
    for prompt, gen in zip(group, gens, strict=True):
        alone = engine.generate([prompt], GREEDY, STOP)[0]
        assert gen.token_ids == alone.token_ids and gen.logprobs == pytest.approx(alone.logprobs, abs=1e-4)
    sampled = engine.generate(group, SamplingParams(8, temperature=1.0), STOP)
    assert len({tuple(g.token_ids) for g in sampled[:4]}) > 1  # the copies still sample apart
