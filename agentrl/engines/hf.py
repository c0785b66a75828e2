"""`transformers` generation: batched sampling with a KV cache, left padding, per-row stop rules and log-probs.

A hand-written decode loop rather than `model.generate`: it returns the exact sampled ids with the log-prob of
each under the sampling distribution, stops rows on tool-call markers cheaply, and draws from one seeded
`torch.Generator` whose state the trainer checkpoints (so a resumed run samples what an unbroken one would).

Multi-turn prefix reuse: a row that stops on a tool call keeps its keys and values (under the caller's key for
that conversation) until its next turn, which then prefills only the new tokens (the observation) instead of
the whole conversation again. Without it every turn re-prefills everything before it, which costs more than
decoding on a small model with a large batch. Kept state lives for the next KEEP_STREAMS decode streams (a
generate call is one; the agent loop's halves alternate two; its continuous schedule runs one for the whole
batch) and is dropped when the weights change.

Continuous batching (`DecodeStream`): rows join the decode batch while others decode, so an agent loop keeps
the model busy while tool calls run.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from agentrl.engines.base import Engine, Generation, SamplingParams, StopRule, token_budget

KEEP_STREAMS = 2
"""A kept prefix not continued within this many decode streams is dropped (its conversation ended)."""


@dataclass
class _KeptPrefix:
    """Keys and values (per layer, [heads, len(ids), head_dim]) of a conversation's first tokens."""

    ids: list[int]
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    stream: int
    """The decode stream that kept it."""


class HFEngine(Engine):
    def __init__(self, model, eos_token_ids: Sequence[int], pad_token_id: int, max_length: int, seed: int = 0):
        self.model = model
        self.eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long)
        self.pad_token_id = pad_token_id
        self.max_length = max_length
        self.generator = torch.Generator().manual_seed(seed)
        self._kept: dict[Hashable, _KeptPrefix] = {}
        self._streams = 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _sample(self, logits: torch.Tensor, params: SamplingParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Next token and its log-prob under the sampling distribution (temperature applied, before top-p)."""
        if params.greedy:
            logp = torch.log_softmax(logits.float(), dim=-1)
            token = logp.argmax(-1)
            return token, logp.gather(-1, token[:, None]).squeeze(-1)
        logp = torch.log_softmax(logits.float() / params.temperature, dim=-1)
        probs = logp.exp()
        if params.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > params.top_p
            probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
        token = torch.multinomial(probs.cpu(), 1, generator=self.generator).squeeze(-1).to(logits.device)
        return token, logp.gather(-1, token[:, None]).squeeze(-1)

    @torch.inference_mode()
    def sync_weights(self, model) -> float:
        """This engine samples from the trainer's own model object: only kept prefixes (old weights) go."""
        self._kept.clear()
        return 0.0

    def close(self) -> None:
        self._kept.clear()

    def _reusable(self, prompt: list[int], key: Hashable | None) -> _KeptPrefix | None:
        kept = self._kept.get(key) if key is not None else None
        if kept is None or len(kept.ids) >= len(prompt) or prompt[: len(kept.ids)] != kept.ids:
            return None
        return kept

    def stream(self, params: SamplingParams, stop: StopRule | None = None) -> DecodeStream:
        """A decode batch that rows join and leave one by one (continuous batching): see `DecodeStream`."""
        self._streams += 1
        return DecodeStream(self, params, stop)

    def _prefill(self, prompts: Sequence[list[int]], keys: Sequence[Hashable | None]) -> _Batch:
        """Feed every row's prompt (after its kept prefix): the rows' last logits, cache, mask and next positions.

        Rows are prefilled in groups of similar length, then merged into one batch: one long observation
        would otherwise pad every row of the batch to its length.
        """
        kept = [self._reusable(p, k) for p, k in zip(prompts, keys, strict=True)]
        used = set(keys)
        self._kept = {k: v for k, v in self._kept.items() if k not in used and self._streams - v.stream < KEEP_STREAMS}
        cached = [len(k.ids) if k else 0 for k in kept]
        fresh = [p[c:] for p, c in zip(prompts, cached, strict=True)]
        # rows that start from nothing with the same tokens (a group's copies of one prompt) are computed once
        first: dict[tuple[int, ...], int] = {}
        source = [r if kept[r] else first.setdefault(tuple(f), r) for r, f in enumerate(fresh)]
        unique = sorted(set(source))
        batch = self._prefill_rows(unique, kept, fresh)
        if len(unique) == len(fresh):
            return batch
        slot = {row: i for i, row in enumerate(unique)}
        return batch.select(torch.tensor([slot[row] for row in source], device=self.device))

    def _prefill_rows(self, rows: list[int], kept: list[_KeptPrefix | None], fresh: list[list[int]]) -> _Batch:
        """`rows` prefilled in groups of similar length, merged back into the order of `rows`."""
        groups = [[rows[i] for i in g] for g in prefill_groups([len(fresh[r]) for r in rows])]
        if len(groups) == 1:  # one forward, in the batch's own order: nothing to merge
            return self._prefill_group(rows, kept, fresh)
        slot = {row: i for i, row in enumerate(rows)}
        order = torch.tensor([slot[row] for g in groups for row in g])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        merged = _Batch.merge([self._prefill_group(g, kept, fresh) for g in groups], self.model.config)
        return merged.select(inverse.to(self.device))

    def _prefill_group(self, rows: list[int], kept: list[_KeptPrefix | None], fresh: list[list[int]]) -> _Batch:
        """One forward over `rows`: layout per row [pad | kept prefix][pad | new tokens], pads masked out and
        positions counting real tokens only, so the holes change nothing."""
        cached = [len(kept[r].ids) if kept[r] else 0 for r in rows]
        width_c, width = max(cached), max(len(fresh[r]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width_c + width), dtype=torch.long)
        for i, (r, c) in enumerate(zip(rows, cached, strict=True)):
            ids[i, width - len(fresh[r]) :] = torch.tensor(fresh[r], dtype=torch.long)
            mask[i, width_c - c : width_c] = 1
            mask[i, width_c + width - len(fresh[r]) :] = 1
        cache = None
        if width_c:
            first = next(kept[r] for r in rows if kept[r])
            layers = []
            for layer, pair in enumerate(first.kv):
                batch_kv = [t.new_zeros((len(rows), t.shape[0], width_c, t.shape[-1])) for t in pair]
                for i, (r, c) in enumerate(zip(rows, cached, strict=True)):
                    if c:
                        for j in (0, 1):
                            batch_kv[j][i, :, width_c - c :] = kept[r].kv[layer][j]
                layers.append(tuple(batch_kv))
            cache = DynamicCache(ddp_cache_data=layers, config=self.model.config)
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width_c:]
        result = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
        return _Batch(result.logits[:, -1, :], result.cache, mask, mask.sum(-1, keepdim=True))

    def _keep(self, key: Hashable, cache: DynamicCache, row: int, row_mask: torch.Tensor, ids: list[int]) -> None:
        """Keep a row's keys and values for `ids` (its prompt and all but its last generated token)."""
        where = row_mask.nonzero().squeeze(-1)[: len(ids)]
        kv = [(layer.keys[row][:, where], layer.values[row][:, where]) for layer in cache.layers]
        self._kept[key] = _KeptPrefix(ids, kv, self._streams)


@dataclass
class _Row:
    tag: Hashable
    """The caller's name for this request, returned with its generation."""
    prompt: list[int]
    key: Hashable | None
    """The conversation it continues (prefix reuse), if any."""
    budget: int
    gen: Generation = field(default_factory=lambda: Generation([]))


@dataclass
class _Batch:
    """Rows decoding together: each row's next-token logits, the KV cache, the attention mask (left-padded,
    holes where a row fed padding) and each row's next position."""

    logits: torch.Tensor
    cache: DynamicCache
    mask: torch.Tensor
    positions: torch.Tensor

    def select(self, index: torch.Tensor) -> _Batch:
        self.cache.batch_select_indices(index)
        return _Batch(self.logits[index], self.cache, self.mask[index], self.positions[index]).trimmed()

    @staticmethod
    def merge(parts: Sequence[_Batch], config) -> _Batch:
        """The parts' rows in order, each right-aligned to the widest mask."""
        width = max(p.mask.shape[1] for p in parts)
        layers = []
        for i in range(len(parts[0].cache.layers)):
            k, v = ([_left_pad(getattr(p.cache.layers[i], name), width) for p in parts] for name in ("keys", "values"))
            layers.append((torch.cat(k), torch.cat(v)))
        return _Batch(
            torch.cat([p.logits for p in parts]),
            DynamicCache(ddp_cache_data=layers, config=config),
            torch.cat([_left_pad(p.mask, width) for p in parts]),
            torch.cat([p.positions for p in parts]),
        ).trimmed()

    def trimmed(self) -> _Batch:
        """Without the leading columns that no row attends to (left by rows that left the batch)."""
        first = int(self.mask.any(0).long().argmax())
        if first == 0:
            return self
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
        return _Batch(self.logits, self.cache, self.mask[:, first:], self.positions)


class DecodeStream:
    """Rows sampled in one decode batch, which new rows may join while others decode (continuous batching).

    `add` queues a prompt; each `step` samples one token for every row in the batch and returns the rows that
    finished, as (tag, generation). An agent loop adds a trajectory's next turn as soon as its tool call returns,
    so the batch stays full while tools run, and no turn waits for the longest row of a round. Joining and leaving
    rebuild the batch's cache, so both wait until they would change a quarter of it (or the batch is empty).
    Rows sample from the engine's one generator in batch order: the tokens a row gets depend on which rows decode
    beside it, i.e. on when tool calls return.
    """

    def __init__(self, engine: HFEngine, params: SamplingParams, stop: StopRule | None):
        self.engine, self.params, self.stop = engine, params, stop
        self._waiting: list[_Row] = []
        self._ready: list[tuple[Hashable, Generation]] = []
        self._rows: list[_Row] = []
        """Batch position -> row; `_going[i]` is False once row i finished (it feeds padding until it leaves)."""
        self._going: list[bool] = []
        self._batch: _Batch | None = None

    def add(self, tag: Hashable, prompt: Sequence[int], key: Hashable | None = None) -> None:
        """Queue `prompt` (it joins the batch at a coming step); `key` names the conversation it continues."""
        budget = token_budget(self.params, self.engine.max_length, prompt)
        row = _Row(tag, list(prompt), key, budget)
        if budget:
            self._waiting.append(row)
        else:
            self._ready.append((tag, row.gen))

    def __len__(self) -> int:
        """Rows queued, decoding or finished and not yet returned."""
        return len(self._waiting) + len(self._ready) + self._going.count(True)

    def close(self) -> None:
        self._waiting, self._ready, self._rows, self._going, self._batch = [], [], [], [], None

    @torch.inference_mode()
    def step(self) -> list[tuple[Hashable, Generation]]:
        if self._waiting and 4 * (len(self._waiting) + self._going.count(False)) >= len(self._rows):
            self._admit()
        finished, self._ready = self._ready, []
        if self._batch is None:
            return finished
        engine, batch, stop = self.engine, self._batch, self.stop
        token, logp = engine._sample(batch.logits, self.params)
        is_eos, tokens, logps = torch.isin(token, engine.eos.to(token.device)).tolist(), token.tolist(), logp.tolist()
        for i, row in enumerate(self._rows):
            if not self._going[i]:
                continue
            gen = row.gen
            gen.token_ids.append(tokens[i])
            gen.logprobs.append(logps[i])
            if is_eos[i]:
                gen.finish_reason = "eos"
            elif stop is not None and tokens[i] in stop.trigger_ids and stop.check(gen.token_ids):
                gen.finish_reason = "stop"
            elif len(gen.token_ids) < row.budget:
                continue
            self._going[i] = False
            finished.append((row.tag, gen))
            # a tool call (a text format's stop, or a native message's end of turn): the conversation may go on
            if row.key is not None and gen.finish_reason != "length":
                engine._keep(row.key, batch.cache, i, batch.mask[i], row.prompt + gen.token_ids[:-1])
        if not any(self._going):
            self._rows, self._going, self._batch = [], [], None
            return finished
        if self._going.count(False) * 4 >= len(self._rows):  # a quarter of the batch is finished: drop those rows
            index = self._going_rows()
            batch, token = self._leave(index), token[index]
        fed = torch.tensor(self._going, dtype=batch.mask.dtype, device=batch.mask.device)[:, None]
        mask = torch.cat([batch.mask, fed], dim=1)  # finished rows feed padding
        result = engine.model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=batch.positions,
            cache=batch.cache,
            use_cache=True,
        )
        self._batch = _Batch(result.logits[:, -1, :], result.cache, mask, batch.positions + 1)
        return finished

    def _going_rows(self) -> torch.Tensor:
        return torch.tensor([i for i, g in enumerate(self._going) if g], device=self.engine.device)

    def _leave(self, index: torch.Tensor) -> _Batch:
        """Drop the finished rows (all but `index`) from the batch."""
        self._rows = [r for r, g in zip(self._rows, self._going, strict=True) if g]
        self._going = [True] * len(self._rows)
        self._batch = self._batch.select(index)
        return self._batch

    def _admit(self) -> None:
        """Prefill the queued rows and merge them into the batch (the finished rows leave it first)."""
        rows, self._waiting = self._waiting, []
        new = self.engine._prefill([r.prompt for r in rows], [r.key for r in rows])
        if self._batch is not None:
            new = _Batch.merge([self._leave(self._going_rows()), new], self.engine.model.config)
        self._batch, self._rows = new, self._rows + rows
        self._going = [True] * len(self._rows)


def prefill_groups(lengths: Sequence[int], forward_cost: int = 32) -> list[list[int]]:
    """Rows split into groups of similar length, minimising padded tokens + `forward_cost` per extra forward.

    Sorted by length, the best contiguous split is a small dynamic program: best[j] = min over i of
    best[i] + (j - i) * lengths[j-1] + forward_cost.
    """
    order = sorted(range(len(lengths)), key=lambda r: lengths[r])
    sizes = [lengths[r] for r in order]
    best, cut = [0] + [0] * len(sizes), [0] * (len(sizes) + 1)
    for j in range(1, len(sizes) + 1):
        best[j], cut[j] = min((best[i] + (j - i) * sizes[j - 1] + forward_cost, i) for i in range(j))
    groups, j = [], len(sizes)
    while j:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Pad dim 1 (mask) or dim 2 (keys/values) on the left with zeros to `width`."""
    dim = 1 if t.dim() == 2 else 2
    missing = width - t.shape[dim]
    if not missing:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)
