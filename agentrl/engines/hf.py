"""`transformers` generation: batched sampling with a KV cache, left padding, per-row stop rules and log-probs.

A hand-written decode loop rather than `model.generate`: it returns the exact sampled ids with the log-prob of
each under the sampling distribution, stops rows on tool-call markers cheaply, and draws from one seeded
`torch.Generator` whose state the trainer checkpoints (so a resumed run samples what an unbroken one would).

Multi-turn prefix reuse: a row that stops on a tool call keeps its keys and values (under the caller's key for
that conversation) until the next call, which then prefills only the new tokens (the observation) instead of
the whole conversation again. Without it every turn re-prefills everything before it, which costs more than
decoding on a small model with a large batch. Kept state lives for the next KEEP_CALLS calls (the agent loop
alternates two halves of its batch) and is dropped when the weights change.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from agentrl.engines.base import Generation, SamplingParams, StopRule

KEEP_CALLS = 2
"""A kept prefix not continued within this many generate calls is dropped (its conversation ended)."""


@dataclass
class _KeptPrefix:
    """Keys and values (per layer, [heads, len(ids), head_dim]) of a conversation's first tokens."""

    ids: list[int]
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    call: int
    """The generate call that kept it."""


class HFEngine:
    def __init__(self, model, eos_token_ids: Sequence[int], pad_token_id: int, max_length: int, seed: int = 0):
        self.model = model
        self.eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long)
        self.pad_token_id = pad_token_id
        self.max_length = max_length
        self.generator = torch.Generator().manual_seed(seed)
        self._kept: dict[Hashable, _KeptPrefix] = {}
        self._calls = 0

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

    def _prefill(self, prompts: Sequence[list[int]], keys: Sequence[Hashable | None]):
        """Feed every row's prompt (after its kept prefix); return the last logits, cache, mask and next positions.

        Rows are prefilled in groups of similar length, then merged into one batch: one long observation
        would otherwise pad every row of the batch to its length.
        """
        kept = [self._reusable(p, k) for p, k in zip(prompts, keys, strict=True)]
        self._calls, used = self._calls + 1, set(keys)
        self._kept = {k: v for k, v in self._kept.items() if k not in used and self._calls - v.call < KEEP_CALLS}
        cached = [len(k.ids) if k else 0 for k in kept]
        fresh = [p[c:] for p, c in zip(prompts, cached, strict=True)]
        groups = prefill_groups([len(f) for f in fresh])
        if len(groups) == 1:  # one forward, in the batch's own order: nothing to merge
            logits, cache, mask = self._prefill_group(list(range(len(fresh))), kept, fresh)
            return logits, cache, mask, mask.sum(-1, keepdim=True)
        parts = [self._prefill_group(g, kept, fresh) for g in groups]
        order = torch.tensor([row for g in groups for row in g])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        inverse = inverse.to(self.device)
        width = max(m.shape[1] for _, _, m in parts)
        logits = torch.cat([lg for lg, _, _ in parts])[inverse]
        mask = torch.cat([_left_pad(m, width) for _, _, m in parts])[inverse]
        layers = []
        for i in range(len(parts[0][1].layers)):
            k, v = ([_left_pad(getattr(c.layers[i], name), width) for _, c, _ in parts] for name in ("keys", "values"))
            layers.append((torch.cat(k)[inverse], torch.cat(v)[inverse]))
        cache = DynamicCache(ddp_cache_data=layers, config=self.model.config)
        return logits, cache, mask, mask.sum(-1, keepdim=True)

    def _prefill_group(self, rows: list[int], kept: list[_KeptPrefix | None], fresh: list[list[int]]):
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
        return result.logits[:, -1, :], result.cache, mask

    def _keep(self, key: Hashable, cache: DynamicCache, row: int, row_mask: torch.Tensor, ids: list[int]) -> None:
        """Keep a row's keys and values for `ids` (its prompt and all but its last generated token)."""
        where = row_mask.nonzero().squeeze(-1)[: len(ids)]
        kv = [(layer.keys[row][:, where], layer.values[row][:, where]) for layer in cache.layers]
        self._kept[key] = _KeptPrefix(ids, kv, self._calls)

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[list[int]],
        params: SamplingParams,
        stop: StopRule | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> list[Generation]:
        """Decode all rows in lockstep; finished rows leave the batch once they are a quarter of it (so a few long
        rows do not drag the whole batch's compute along)."""
        if not prompts:
            return []
        keys = list(keys) if keys is not None else [None] * len(prompts)
        budget = [max(0, min(params.max_new_tokens, self.max_length - len(p))) for p in prompts]
        out = [Generation([], [], "length") for _ in prompts]
        live = [row for row, b in enumerate(budget) if b > 0]  # batch position -> row
        if not live:
            return out
        logits, cache, mask, positions = self._prefill([prompts[r] for r in live], [keys[r] for r in live])
        eos = self.eos.to(self.device)
        going = [True] * len(live)
        while True:
            token, logp = self._sample(logits, params)
            is_eos, tokens, logps = torch.isin(token, eos).tolist(), token.tolist(), logp.tolist()
            for i, row in enumerate(live):
                if not going[i]:
                    continue
                gen = out[row]
                gen.token_ids.append(tokens[i])
                gen.logprobs.append(logps[i])
                if is_eos[i]:
                    gen.finish_reason = "eos"
                elif stop is not None and tokens[i] in stop.trigger_ids and stop.check(gen.token_ids):
                    gen.finish_reason = "stop"
                elif len(gen.token_ids) < budget[row]:
                    continue
                going[i] = False
                if keys[row] is not None and gen.finish_reason == "stop":  # a tool call: the conversation goes on
                    self._keep(keys[row], cache, i, mask[i], list(prompts[row]) + gen.token_ids[:-1])
            if not any(going):
                return out
            if going.count(False) * 4 >= len(live):  # a quarter of the batch is finished: drop those rows
                index = torch.tensor([i for i, g in enumerate(going) if g], device=self.device)
                cache.batch_select_indices(index)
                live, mask, positions, token = (
                    [live[i] for i in index.tolist()],
                    mask[index],
                    positions[index],
                    token[index],
                )
                going = [True] * len(live)
            fed = torch.tensor(going, dtype=mask.dtype, device=self.device)[:, None]  # finished rows feed padding
            mask = torch.cat([mask, fed], dim=1)
            result = self.model(
                input_ids=token[:, None], attention_mask=mask, position_ids=positions, cache=cache, use_cache=True
            )
            cache, logits, positions = result.cache, result.logits[:, -1, :], positions + 1


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
