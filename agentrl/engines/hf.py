"""`transformers` generation: batched sampling with a KV cache, left padding, per-row stop rules and log-probs.

A hand-written decode loop rather than `model.generate`: it returns the exact sampled ids with the log-prob of
each under the sampling distribution, stops rows on tool-call markers cheaply, and draws from one seeded
`torch.Generator` whose state the trainer checkpoints (so a resumed run samples what an unbroken one would).

Multi-turn prefix reuse: a row that stops on a tool call keeps its keys and values (under the caller's key for
that conversation) until the next call, which then prefills only the new tokens (the observation) instead of
the whole conversation again. Without it every turn re-prefills everything before it, which costs more than
decoding on a small model with a large batch. Kept state is dropped when the weights change.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from agentrl.engines.base import Generation, SamplingParams, StopRule


@dataclass
class _KeptPrefix:
    """Keys and values (per layer, [heads, len(ids), head_dim]) of a conversation's first tokens."""

    ids: list[int]
    kv: list[tuple[torch.Tensor, torch.Tensor]]


class HFEngine:
    def __init__(self, model, eos_token_ids: Sequence[int], pad_token_id: int, max_length: int, seed: int = 0):
        self.model = model
        self.eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long)
        self.pad_token_id = pad_token_id
        self.max_length = max_length
        self.generator = torch.Generator().manual_seed(seed)
        self._kept: dict[Hashable, _KeptPrefix] = {}

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

    def _first_input(self, prompts: Sequence[list[int]], keys: Sequence[Hashable | None]):
        """The first forward's inputs: each row's kept prefix goes in the cache, the rest of its prompt is fed.

        Layout per row: [pad | kept prefix][pad | new tokens], both parts left-padded to the batch's widest;
        the attention mask zeroes the pads and positions count real tokens only, so holes change nothing.
        """
        kept = [self._reusable(p, k) for p, k in zip(prompts, keys, strict=True)]
        self._kept = {}
        cached = [len(k.ids) if k else 0 for k in kept]
        fresh = [p[c:] for p, c in zip(prompts, cached, strict=True)]
        batch, width_c, width = len(prompts), max(cached), max(map(len, fresh))
        ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((batch, width_c + width), dtype=torch.long)
        for row, (tokens, c) in enumerate(zip(fresh, cached, strict=True)):
            ids[row, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
            mask[row, width_c - c : width_c] = 1
            mask[row, width_c + width - len(tokens) :] = 1
        cache = None
        if width_c:
            layers = []
            for layer, (k0, v0) in enumerate(next(k for k in kept if k).kv):
                batch_k, batch_v = (t.new_zeros((batch, t.shape[0], width_c, t.shape[-1])) for t in (k0, v0))
                for row, k in enumerate(kept):
                    if k:
                        batch_k[row, :, width_c - cached[row] :] = k.kv[layer][0]
                        batch_v[row, :, width_c - cached[row] :] = k.kv[layer][1]
                layers.append((batch_k, batch_v))
            cache = DynamicCache(ddp_cache_data=layers, config=self.model.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width_c:]
        return ids.to(self.device), mask.to(self.device), positions.to(self.device), cache

    def _keep(self, key: Hashable, cache: DynamicCache, row: int, row_mask: torch.Tensor, ids: list[int]) -> None:
        """Keep a row's keys and values for `ids` (its prompt and all but its last generated token)."""
        where = row_mask.nonzero().squeeze(-1)[: len(ids)]
        kv = [(layer.keys[row][:, where], layer.values[row][:, where]) for layer in cache.layers]
        self._kept[key] = _KeptPrefix(ids, kv)

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[list[int]],
        params: SamplingParams,
        stop: StopRule | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> list[Generation]:
        if not prompts:
            return []
        device = self.device
        batch = len(prompts)
        keys = list(keys) if keys is not None else [None] * batch
        budget = [max(0, min(params.max_new_tokens, self.max_length - len(p))) for p in prompts]
        step_ids, mask, step_pos, cache = self._first_input(prompts, keys)
        out = [Generation([], [], "length") for _ in prompts]
        active = [b > 0 for b in budget]
        eos = self.eos.to(device)
        for _ in range(max(budget)):
            if not any(active):
                break
            result = self.model(
                input_ids=step_ids, attention_mask=mask, position_ids=step_pos, cache=cache, use_cache=True
            )
            cache, cached_mask = result.cache, mask
            token, logp = self._sample(result.logits[:, -1, :], params)
            is_eos = torch.isin(token, eos).tolist()
            tokens, logps = token.tolist(), logp.tolist()
            fed = list(active)  # the tokens fed next are real for the rows active now
            for row in range(batch):
                if not active[row]:
                    continue
                gen = out[row]
                gen.token_ids.append(tokens[row])
                gen.logprobs.append(logps[row])
                if is_eos[row]:
                    gen.finish_reason, active[row] = "eos", False
                elif stop is not None and tokens[row] in stop.trigger_ids and stop.check(gen.token_ids):
                    gen.finish_reason, active[row] = "stop", False
                elif len(gen.token_ids) >= budget[row]:
                    active[row] = False
            step_ids = token[:, None]
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, torch.tensor(fed, dtype=mask.dtype, device=device)[:, None]], dim=1)
        for row, gen in enumerate(out):
            if keys[row] is not None and gen.finish_reason == "stop":  # a tool call: the conversation goes on
                self._keep(keys[row], cache, row, cached_mask[row], list(prompts[row]) + gen.token_ids[:-1])
        return out
