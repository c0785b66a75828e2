"""The HF engine's multi-turn prefix reuse: same tokens and log-probs as a full re-prefill, far fewer fed."""

from __future__ import annotations

import pytest
import torch

from agentrl.engines import HFEngine, SamplingParams
from agentrl.engines.base import StopRule

# every token triggers the check, which stops a row after 3 tokens: turns end "stop", as on a tool call
STOP = StopRule(frozenset(range(10_000)), lambda ids: len(ids) >= 3)
GREEDY = SamplingParams(8, greedy=True)


class FedCounter:
    """Counts the input ids the model is fed by each generate call's first (prefill) forward."""

    def __init__(self, model):
        self.first_forward: list[int] = []
        self._new_call = True
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if self._new_call:
            self.first_forward.append(kwargs["input_ids"].numel())
            self._new_call = False

    def next_call(self) -> None:
        self._new_call = True


def conversation(engine: HFEngine, counter: FedCounter, prompts, keys, turns: int = 4):
    contexts, outputs = [list(p) for p in prompts], []
    for turn in range(turns):
        counter.next_call()
        gens = engine.generate(contexts, GREEDY, STOP, keys)
        outputs.append(gens)
        for row, gen in enumerate(gens):
            contexts[row] += gen.token_ids + [5 + turn, 6 + row]  # an "observation"
    return outputs


@pytest.fixture()
def prompts():
    torch.manual_seed(0)
    return [torch.randint(5, 300, (n,)).tolist() for n in (7, 19, 12, 30)]


def test_reuse_gives_the_same_tokens_and_logprobs_and_prefills_only_new_tokens(tiny_model, tokenizer, prompts):
    counter = FedCounter(tiny_model)
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512)
    plain = conversation(engine, counter, prompts, keys=None)
    fed_plain = counter.first_forward[:]
    reused = conversation(engine, counter, prompts, keys=["a", "b", "c", "d"])
    fed_reused = counter.first_forward[len(fed_plain) :]
    for turn_plain, turn_reused in zip(plain, reused, strict=True):
        for a, b in zip(turn_plain, turn_reused, strict=True):
            assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason == "stop"
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert fed_reused[0] == fed_plain[0]  # nothing kept yet
    # later turns feed the last generated token and the observation: 3 per row, however long the context
    assert fed_reused[1:] == [4 * 3] * 3
    assert all(fed > 4 * 30 for fed in fed_plain[1:])


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
    assert counter.first_forward[-1] == 4 * max(map(len, contexts))  # everything prefilled again
    # a prompt that does not extend what its key kept (another branch) is prefilled whole, and still right
    other = [[9, 9, 9] + c for c in contexts]
    counter.next_call()
    swapped = engine.generate(other, GREEDY, STOP, keys)
    fresh = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512).generate(other, GREEDY, STOP)
    assert [g.token_ids for g in swapped] == [g.token_ids for g in fresh]
    assert counter.first_forward[-1] == 4 * max(map(len, other))
