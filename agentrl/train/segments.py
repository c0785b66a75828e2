"""A pack's states by segments: each stretch of tokens between branch points runs once, on its ancestors' cached
keys and values.

A pack (agentrl.train.packing) is a prefix tree of tokens. Cut it at its branch points and each piece, a segment,
is a run of tokens every row through it shares. The segments run level by level (a segment after the one it
branches from), all segments of a level in one batched forward whose cache holds, per segment, the keys and values
of its ancestors' tokens, gathered from the levels before with their gradients. A token thus attends to its own
path, as in a row run alone, and the attention costs what the paths hold, where a dense tree mask over the pack
scores every token against every position of the pack.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import DynamicCache


@dataclass(frozen=True)
class Segment:
    pack: int
    start: int  # its first node in the pack
    end: int  # one past its last
    ancestors: tuple[int, ...]  # the nodes on the path before it, root first
    level: int


def segments(parent: list[int], pack: int = 0) -> list[Segment]:
    """The segments of pack `pack`, given each node's parent (-1: a root; nodes in creation order, parents first). A
    node starts a segment if it is a root, if it does not follow its parent, or if its parent has other children."""
    children = [0] * len(parent)
    for p in parent:
        if p >= 0:
            children[p] += 1
    found: list[Segment] = []
    ending_at: dict[int, int] = {}  # a segment's last node -> the segment
    start = 0
    for i in range(1, len(parent) + 1):
        if i < len(parent) and parent[i] == i - 1 and children[i - 1] == 1:
            continue
        up = parent[start]
        if up < 0:
            ancestors, level = (), 0
        else:
            above = found[ending_at[up]]
            ancestors, level = (*above.ancestors, *range(above.start, above.end)), above.level + 1
        found.append(Segment(pack, start, i, ancestors, level))
        ending_at[i - 1] = len(found) - 1
        start = i
    return found


def _cache_kwarg(decoder) -> str:
    """The name the decoder's forward takes its KV cache by (transformers 5 renames past_key_values to cache)."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def segment_states(model, input_ids: torch.Tensor, position_ids: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """The decoder's last hidden state at every node of the packs ([P, N, D]; zeros at padding), computed segment by
    segment. `input_ids`, `position_ids` (-1: padding) and `parent` are the packs' [P, N] tensors."""
    decoder = model.get_decoder()
    packs, width = input_ids.shape
    device = input_ids.device
    todo: list[Segment] = []
    for p in range(packs):
        nodes = int((position_ids[p] >= 0).sum())
        todo += segments(parent[p, :nodes].tolist(), p)
    layers = model.config.get_text_config(decoder=True).num_hidden_layers
    keys: list[list[torch.Tensor]] = [[] for _ in range(layers)]  # per layer: each level's new keys [n, heads, dim]
    values: list[list[torch.Tensor]] = [[] for _ in range(layers)]
    row_of = torch.full((packs * width,), -1, dtype=torch.long)  # node (pack * width + node) -> its row in keys
    stored, states, order = 0, [], []
    kwarg = _cache_kwarg(decoder)
    for level in range(max(s.level for s in todo) + 1):
        batch = [s for s in todo if s.level == level]
        past = max(len(s.ancestors) for s in batch)
        length = max(s.end - s.start for s in batch)
        ids = torch.zeros(len(batch), length, dtype=torch.long, device=device)
        pos = torch.zeros(len(batch), length, dtype=torch.long, device=device)
        mask = torch.zeros(len(batch), past + length, dtype=torch.long, device=device)
        gather = torch.zeros(len(batch), past, dtype=torch.long)
        new = []
        for b, s in enumerate(batch):
            n = s.end - s.start
            ids[b, :n] = input_ids[s.pack, s.start : s.end]
            pos[b, :n] = position_ids[s.pack, s.start : s.end]
            mask[b, : len(s.ancestors)] = 1
            mask[b, past : past + n] = 1
            gather[b, : len(s.ancestors)] = row_of[[s.pack * width + a for a in s.ancestors]]
            new += [s.pack * width + node for node in range(s.start, s.end)]
        cache = DynamicCache()
        if past:
            for layer in range(layers):
                k, v = torch.cat(keys[layer]), torch.cat(values[layer])
                cache.update(k[gather].transpose(1, 2), v[gather].transpose(1, 2), layer)
        out = decoder(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=True, **{kwarg: cache})
        valid = mask[:, past:].bool()
        states.append(out.last_hidden_state[valid])
        for layer in range(layers):
            keys[layer].append(cache.layers[layer].keys[:, :, past:].transpose(1, 2)[valid])
            values[layer].append(cache.layers[layer].values[:, :, past:].transpose(1, 2)[valid])
        row_of[new] = torch.arange(stored, stored + len(new))
        stored += len(new)
        order += new
    flat = torch.cat(states)
    out = flat.new_zeros(packs * width, flat.shape[-1]).index_copy(0, torch.tensor(order, device=device), flat)
    return out.reshape(packs, width, -1)
