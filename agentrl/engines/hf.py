"""`transformers` generation: batched sampling with a KV cache, left padding, per-row stop rules and log-probs.

A hand-written decode loop rather than `model.generate`: it returns the exact sampled ids with the log-prob of
each under the sampling distribution, stops rows on tool-call markers cheaply, and draws from one seeded
`torch.Generator` whose state the trainer checkpoints (so a resumed run samples what an unbroken one would).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agentrl.engines.base import Generation, SamplingParams, StopRule


class HFEngine:
    def __init__(self, model, eos_token_ids: Sequence[int], pad_token_id: int, max_length: int, seed: int = 0):
        self.model = model
        self.eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long)
        self.pad_token_id = pad_token_id
        self.max_length = max_length
        self.generator = torch.Generator().manual_seed(seed)

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
        """Nothing to do: this engine samples from the trainer's own model object."""
        return 0.0

    def close(self) -> None:
        """Nothing to release."""

    def generate(
        self, prompts: Sequence[list[int]], params: SamplingParams, stop: StopRule | None = None
    ) -> list[Generation]:
        if not prompts:
            return []
        device = self.device
        batch = len(prompts)
        width = max(len(p) for p in prompts)
        budget = [max(0, min(params.max_new_tokens, self.max_length - len(p))) for p in prompts]
        ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = [Generation([], [], "length") for _ in prompts]
        active = [b > 0 for b in budget]
        eos = self.eos.to(device)
        cache = None
        step_ids, step_pos = ids, positions
        for _ in range(max(budget)):
            if not any(active):
                break
            result = self.model(
                input_ids=step_ids, attention_mask=mask, position_ids=step_pos, cache=cache, use_cache=True
            )
            cache = result.cache
            token, logp = self._sample(result.logits[:, -1, :], params)
            is_eos = torch.isin(token, eos).tolist()
            tokens, logps = token.tolist(), logp.tolist()
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
            mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], dim=1)
        return out
