"""Trajectories -> padded tensors, and the per-token log-probs of a model on them.

Response space: row b, column t is the t-th response token of trajectory b (model tokens and observation
tokens alike; `response_mask` tells them apart). Log-probs come from one forward pass over prompt+response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agentrl.trajectory import Trajectory


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # [B, L] prompt + response, right-padded
    attention_mask: torch.Tensor  # [B, L]
    target_index: torch.Tensor  # [B, T] position in the shifted sequence that predicts response token t
    response_ids: torch.Tensor  # [B, T]
    response_mask: torch.Tensor  # [B, T] float: 1 on model tokens, 0 on observations and padding
    token_turn: torch.Tensor  # [B, T] long, turn index of each token (-1 = padding)
    sampling_logprobs: torch.Tensor  # [B, T] log-probs recorded while sampling

    def to(self, device) -> TokenBatch:
        return TokenBatch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def select(self, rows: torch.Tensor) -> TokenBatch:
        return TokenBatch(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    @property
    def num_model_tokens(self) -> int:
        return int(self.response_mask.sum().item())

    @property
    def lengths(self) -> torch.Tensor:
        """[B] prompt + response length of each row."""
        return self.attention_mask.sum(1)

    def trim(self) -> TokenBatch:
        """Drop the padding columns no row of this batch needs (rows padded for longer rows elsewhere)."""
        width = max(int(self.lengths.max()), 2)
        steps = max(int((self.token_turn >= 0).sum(1).max()), 1)
        response = {f: getattr(self, f)[:, :steps] for f in RESPONSE_FIELDS}
        return TokenBatch(
            input_ids=self.input_ids[:, :width],
            attention_mask=self.attention_mask[:, :width],
            **response,
            target_index=self.target_index[:, :steps].clamp(max=width - 2),
        )

    def micro_batches(self, rows: torch.Tensor, max_tokens: int) -> list[torch.Tensor]:
        """`rows` split into micro-batches of similar length, each at most `max_tokens` padded tokens (or 1 row)."""
        lengths, order = self.lengths[rows].sort(descending=True, stable=True)
        groups: list[list[int]] = [[]]
        width = 0
        for row, length in zip(rows[order].tolist(), lengths.tolist(), strict=True):
            if groups[-1] and (len(groups[-1]) + 1) * width > max_tokens:
                groups.append([])
            if not groups[-1]:
                width = length  # the longest row of a micro-batch comes first and sets its padded width
            groups[-1].append(row)
        return [torch.tensor(g, dtype=torch.long, device=rows.device) for g in groups]


RESPONSE_FIELDS = ("response_ids", "response_mask", "token_turn", "sampling_logprobs")


def _pad(rows: Sequence[Sequence], value, dtype) -> torch.Tensor:
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), max(width, 1)), value, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(list(row), dtype=dtype)
    return out


def collate(trajs: Sequence[Trajectory], pad_token_id: int) -> TokenBatch:
    contexts = [t.context_ids for t in trajs]
    prompt_lens = torch.tensor([len(t.prompt_ids) for t in trajs])
    input_ids = _pad(contexts, pad_token_id, torch.long)
    attention_mask = _pad([[1] * len(c) for c in contexts], 0, torch.long)
    response_ids = _pad([t.response_ids for t in trajs], pad_token_id, torch.long)
    response_mask = _pad([t.response_mask for t in trajs], 0, torch.float)
    steps = torch.arange(response_ids.shape[1])
    target_index = (prompt_lens[:, None] - 1 + steps[None, :]).clamp(max=input_ids.shape[1] - 2)
    return TokenBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        target_index=target_index.clamp(min=0),
        response_ids=response_ids,
        response_mask=response_mask,
        token_turn=_pad([t.token_turn for t in trajs], -1, torch.long),
        sampling_logprobs=_pad([t.response_logprobs for t in trajs], 0.0, torch.float),
    )


def batched_logprobs(model, batch: TokenBatch, max_tokens: int) -> torch.Tensor:
    """`token_logprobs` of the whole batch ([B, T], no gradient), computed in length-sorted micro-batches."""
    out = torch.zeros_like(batch.sampling_logprobs)
    with torch.no_grad():
        for rows in batch.micro_batches(torch.arange(len(out), device=out.device), max_tokens):
            logp = token_logprobs(model, batch.select(rows).trim())
            out[rows, : logp.shape[1]] = logp
    return out


def token_logprobs(model, batch: TokenBatch, with_entropy: bool = False):
    """Log-prob of each response token under `model` ([B, T], float32 whatever the model's dtype); with the
    entropy of each position (no gradient) if asked.

    Only the response positions' logits are cast to float32: a bfloat16 model never makes a float32 copy of all
    its logits, and the entropy (a diagnostic) adds nothing to the graph."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    index = batch.target_index[..., None].expand(-1, -1, logits.shape[-1])
    logp = torch.log_softmax(logits.gather(1, index).float(), dim=-1)  # [B, T, V]
    del logits
    token_logp = logp.gather(-1, batch.response_ids[..., None]).squeeze(-1)
    if not with_entropy:
        return token_logp
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
    return token_logp, entropy
