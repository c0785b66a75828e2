"""Trajectories -> padded tensors, and the per-token log-probs of a model on them.

Response space: row b, column t is the t-th response token of trajectory b (model tokens and observation
tokens alike; `response_mask` tells them apart). Log-probs come from one forward pass over prompt+response.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from agentrl.config import TrainConfig
from agentrl.train.packing import Attention, PackedInputs, group_packs, packed_micro_batches, width_bins
from agentrl.train.segments import segment_states
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
        bins = width_bins(self.lengths[rows].tolist(), max_tokens)
        return [rows[torch.tensor(b, dtype=torch.long, device=rows.device)] for b in bins]


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


CHUNK_MIB = TrainConfig.model_fields["logits_chunk_mib"].default


MicroBatch = tuple[torch.Tensor, PackedInputs | None]
"""A micro-batch's rows (indices into the batch), and their packs when shared prefixes are computed once."""


def micro_batches(
    batch: TokenBatch,
    rows: torch.Tensor,
    max_tokens: int,
    groups: Sequence[int] | None = None,
    attention: Attention = "auto",
) -> list[MicroBatch]:
    """`rows` in micro-batches of at most `max_tokens` padded tokens: rows of similar length together, or with
    `groups` (a group id per row of the batch) each group's rows packed, their shared prefixes computed once
    (rows that share too little to pack run as without `groups`), each pack run as `attention` says."""
    if groups is not None:
        packs = group_packs(batch, rows, groups, max_tokens)
        if any(len(members) > 1 for members, _ in packs):
            return packed_micro_batches(batch, packs, max_tokens, attention)
    return [(micro, None) for micro in batch.micro_batches(rows, max_tokens)]


def batched_logprobs(model, batch: TokenBatch, plan: list[MicroBatch], chunk_mib: float = CHUNK_MIB) -> torch.Tensor:
    """`token_logprobs` of the whole batch ([B, T], no gradient), computed micro-batch by micro-batch of `plan`
    (micro_batches of every row)."""
    out = torch.zeros_like(batch.sampling_logprobs)
    with torch.no_grad():
        for rows, packed in plan:
            logp = token_logprobs(model, batch.select(rows).trim(), chunk_mib=chunk_mib, packed=packed)
            out = out.to(logp.dtype)  # float64 from a float64 model
            out[rows, : logp.shape[1]] = logp
    return out


# Config fields that put a transform between the output head and the logits (softcapping, scaling): such a model's
# logits come from its own forward, not from head(hidden).
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def _rows_per_chunk(chunk_mib: float, vocab: int) -> int:
    """Response positions whose float32 logits fit in `chunk_mib`."""
    return max(1, int(chunk_mib * 2**20 // (4 * vocab)))


def _response_states(
    model, batch: TokenBatch, chunk_mib: float, packed: PackedInputs | None
) -> tuple[torch.Tensor, Callable, int]:
    """The states that predict each response token ([B, T, D]; with `packed`, those of every pack position,
    [P, N, D]), the function that maps them to logits, and the vocabulary size.

    A pack marked for segments runs segment by segment (agentrl.train.segments), unless the model's logits are more
    than its head or gradient checkpointing is on; otherwise under its tree mask. When the logits of every position
    of the batch fit in one chunk, or the model's logits are more than its head (softcapping, scaling), they come
    from the model's own forward. Otherwise the states are the decoder's last hidden states at the response
    positions, so no logits are computed for the prompt and the head runs chunk by chunk."""
    head = model.get_output_embeddings()
    plain = isinstance(head, torch.nn.Linear) and not any(getattr(model.config, k, None) for k in _LOGIT_TRANSFORMS)
    if packed is not None and packed.segments and plain and not _checkpointed(model):
        return segment_states(model, packed.input_ids, packed.position_ids, packed.parent), head, head.out_features
    if packed is None:
        inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    else:
        inputs = packed.model_inputs(model)
    if plain and inputs["input_ids"].numel() > _rows_per_chunk(chunk_mib, head.out_features):
        states, vocab = model.get_decoder()(**inputs).last_hidden_state, head.out_features
    else:
        states, head = model(**inputs).logits, torch.nn.Identity()
        vocab = states.shape[-1]
    if packed is not None:
        return states, head, vocab
    index = batch.target_index[..., None].expand(-1, -1, states.shape[-1])
    return states.gather(1, index), head, vocab


def _checkpointed(model) -> bool:
    """Whether transformers runs `model` with gradient checkpointing now, which turns its KV cache off (segments
    need it: a pack then runs under its tree mask)."""
    return model.training and any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def _chunk_logprobs(head: Callable, states: torch.Tensor, targets: torch.Tensor, with_entropy: bool):
    logits = head(states)
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # float64 stays
    token_logp = logp.gather(-1, targets[:, None]).squeeze(-1)
    if not with_entropy:
        return (token_logp,)
    with torch.no_grad():
        return token_logp, -(logp.exp() * logp).sum(-1)


def token_logprobs(
    model,
    batch: TokenBatch,
    with_entropy: bool = False,
    chunk_mib: float = CHUNK_MIB,
    packed: PackedInputs | None = None,
):
    """Log-prob of each response token under `model` ([B, T], float32 for any lower precision); with the
    entropy of each position (no gradient) if asked. With `packed` (the batch's rows packed, agentrl.train.packing)
    the model runs on the packs, each shared token once.

    The output head and log-softmax run over as many response positions at a time as keep their float32 logits
    under `chunk_mib`; with a gradient, each chunk's logits are recomputed in the backward pass instead of kept.
    A 152k vocabulary's logits of 8 x 512 tokens would otherwise hold 2.3 GiB per copy, and the log-softmax, the
    entropy and both gradients each make one."""
    states, head, vocab = _response_states(model, batch, chunk_mib, packed)
    shape = batch.response_ids.shape
    targets = batch.response_ids.reshape(-1)
    if packed is None:
        states, inverse = states.reshape(shape.numel(), -1), None
    else:  # a (pack position, next token) pair that several rows hold is scored once
        position = (packed.pack * states.shape[1] + packed.state_index).reshape(-1)
        pairs, inverse = torch.unique(position * vocab + targets, return_inverse=True)
        states, targets = states.reshape(-1, states.shape[-1])[pairs // vocab], pairs % vocab
    rows = _rows_per_chunk(chunk_mib, vocab)
    recompute = torch.is_grad_enabled() and states.requires_grad and len(targets) > rows
    outs = []
    for chunk, chunk_targets in zip(states.split(rows), targets.split(rows), strict=True):
        if recompute:
            outs.append(checkpoint(_chunk_logprobs, head, chunk, chunk_targets, with_entropy, use_reentrant=False))
        else:
            outs.append(_chunk_logprobs(head, chunk, chunk_targets, with_entropy))
    token_logp, *entropy = (
        (torch.cat(parts) if inverse is None else torch.cat(parts)[inverse]).reshape(shape)
        for parts in zip(*outs, strict=True)
    )
    return (token_logp, entropy[0]) if with_entropy else token_logp
