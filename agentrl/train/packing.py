"""Shared-prefix packing: the trajectories of one prompt (a tree's leaves, a chain group) as one sequence in which
every token they share is computed once.

The rows of a pack are merged into a prefix tree of tokens: two rows that agree on their first n tokens share those
n nodes. The pack is the tree's nodes in creation order (a parent always before its children), each at the
position id of its depth, and a token attends to its ancestors and itself only. A causal decoder's state at a node
depends on the tokens on its path alone, so each row's states, log-probs and gradients are those of the row run on
its own: the update is the per-row one, with each shared token computed once instead of once per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:
    from agentrl.train.batch import TokenBatch

MAX_PACK_TOKENS = 2048
"""The longest pack: attention over a pack holds a [heads, n, n] score matrix (a custom mask rules out the
memory-lean kernels on CPU), so a prompt whose trajectories share more than this is split into several packs."""


class PrefixTree:
    """Token sequences merged on their common prefixes; node i holds one token at position `depth[i]`."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.depth: list[int] = []
        self.parent: list[int] = []
        self._child: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def new_nodes(self, tokens: Sequence[int]) -> int:
        """How many nodes adding `tokens` would create."""
        node = -1
        for i, token in enumerate(tokens):
            node = self._child.get((node, token), -2)
            if node == -2:
                return len(tokens) - i
        return 0

    def add(self, tokens: Sequence[int]) -> list[int]:
        """Merge `tokens` in; returns the node of each of its positions."""
        node, path = -1, []
        for token in tokens:
            child = self._child.get((node, token))
            if child is None:
                child = len(self.tokens)
                self._child[(node, token)] = child
                self.tokens.append(token)
                self.depth.append(len(path))
                self.parent.append(node)
            node = child
            path.append(node)
        return path


@dataclass
class PackedInputs:
    """A micro-batch's rows packed: the model runs on the packs, each row reads its states back from its pack."""

    input_ids: torch.Tensor  # [P, N] the packs' tokens, right-padded
    position_ids: torch.Tensor  # [P, N] each token's position in its own rows
    parent: torch.Tensor  # [P, N] each token's parent in its pack's prefix tree (-1: the root, or padding)
    segments: bool  # run segment by segment (agentrl.train.segments), else in one pass under a tree mask
    pack: torch.Tensor  # [R, 1] the pack of each row
    state_index: torch.Tensor  # [R, T] the pack position of the state that predicts each response token

    @property
    def tokens(self) -> int:
        """Tokens the packs hold (each shared token once)."""
        return int((self.position_ids >= 0).sum())

    @cached_property
    def allowed(self) -> torch.Tensor:
        """[P, N, N] bool: token i may attend to token j (j is i or an ancestor of i). Built when first asked for (packs
        run by segments never need it), then kept for the pack's later passes (old-policy, reference)."""
        return _ancestors(self.position_ids, self.parent)

    def model_inputs(self, model) -> dict[str, torch.Tensor]:
        """input_ids, position_ids and the 4D mask in the form the model's attention takes it (sdpa: bool, True
        attends; eager: added to the scores)."""
        mask = self.allowed[:, None]
        if model.config._attn_implementation == "eager":
            dtype = model.get_output_embeddings().weight.dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        return {"input_ids": self.input_ids, "position_ids": self.position_ids.clamp(min=0), "attention_mask": mask}


def width_bins(widths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices of `widths` (rows or packs) in bins of at most `max_tokens` padded tokens (or one item), widest
    first: each bin's first item is its widest and sets the width every item is padded to."""
    order = sorted(range(len(widths)), key=lambda i: -widths[i])  # stable: equal widths keep their order
    bins: list[list[int]] = [[]]
    width = 0
    for i in order:
        if bins[-1] and (len(bins[-1]) + 1) * width > max_tokens:
            bins.append([])
        if not bins[-1]:
            width = widths[i]
        bins[-1].append(i)
    return bins


def packing_unsupported(model) -> str | None:
    """Why `model` cannot run packs (None if it can): packs need a custom 4D attention mask, which only the sdpa
    and eager attentions honour, and one mask for every layer (no sliding-window layers)."""
    config = model.config
    if config._attn_implementation not in ("sdpa", "eager"):
        return f"attention {config._attn_implementation!r} ignores a custom mask (sdpa and eager honour it)"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return "sliding-window attention layers need a mask of their own"
    return None


def _context(batch: TokenBatch, row: int) -> list[int]:
    return batch.input_ids[row, : int(batch.attention_mask[row].sum())].tolist()


Attention = Literal["auto", "mask", "segments"]

SEGMENT_TOKENS = 1024
"""auto: packs this long or longer run segment by segment, shorter ones under a tree mask. The mask scores every
token of a pack against every position, which grows with the square of its length; segments cost what the paths
hold, plus a forward pass per level of the tree, which short packs do not repay (benchmarks/shared_prefix.py)."""


def pack(batch: TokenBatch, pack_of_row: Sequence[int], attention: Attention = "auto") -> PackedInputs:
    """Pack the rows of `batch`, row r into pack `pack_of_row[r]` (0 .. P-1), to run as `attention` says."""
    trees = [PrefixTree() for _ in range(max(pack_of_row) + 1)]
    paths = [trees[p].add(_context(batch, r)) for r, p in enumerate(pack_of_row)]
    width = max(len(t) for t in trees)
    input_ids = torch.zeros(len(trees), width, dtype=torch.long)
    position_ids = torch.full((len(trees), width), -1, dtype=torch.long)
    parent = torch.full((len(trees), width), -1, dtype=torch.long)
    for p, tree in enumerate(trees):
        input_ids[p, : len(tree)] = torch.tensor(tree.tokens)
        position_ids[p, : len(tree)] = torch.tensor(tree.depth)
        parent[p, : len(tree)] = torch.tensor(tree.parent)
    node_of = torch.zeros(len(paths), batch.input_ids.shape[1], dtype=torch.long)
    for r, path in enumerate(paths):
        node_of[r, : len(path)] = torch.tensor(path)
    device = batch.input_ids.device
    return PackedInputs(
        input_ids=input_ids.to(device),
        position_ids=position_ids.to(device),
        parent=parent.to(device),
        segments=attention == "segments" or (attention == "auto" and width >= SEGMENT_TOKENS),
        pack=torch.tensor(pack_of_row, device=device)[:, None],
        state_index=node_of.to(device).gather(1, batch.target_index),
    )


def _ancestors(depth: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """[P, N, N] bool: node j is node i or one of its ancestors. Built depth by depth, a node's row being its
    parent's plus itself; a padding position (depth -1) has only itself, so no query row is empty."""
    packs, width = depth.shape
    allowed = torch.eye(width, dtype=torch.bool).repeat(packs, 1, 1)
    for level in range(1, int(depth.max()) + 1):
        p, i = (depth == level).nonzero(as_tuple=True)
        allowed[p, i] |= allowed[p, parent[p, i]]
    return allowed


MIN_SHARED = 0.25
"""A trajectory joins a pack only if at least this share of its tokens are already in it: attention over a pack
grows with the square of its length, so a pack of trajectories that share little costs more than running them
alone."""


def group_packs(
    batch: TokenBatch, rows: torch.Tensor, groups: Sequence[int], max_tokens: int
) -> list[tuple[list[int], int]]:
    """`rows` as packs: each row joins the pack of its group (one prompt's trajectories) that already holds most of
    its tokens, if that is at least MIN_SHARED of them and the pack stays within `max_tokens` (at most
    MAX_PACK_TOKENS); else it starts a pack. Each pack as (its row indices, its tokens)."""
    limit = min(max_tokens, MAX_PACK_TOKENS)
    packs: list[tuple[PrefixTree, list[int]]] = []
    of_group: dict[int, list[int]] = {}
    for row in rows.tolist():
        tokens = _context(batch, row)
        candidates = [(packs[i][0].new_nodes(tokens), i) for i in of_group.get(groups[row], [])]
        fitting = [(new, i) for new, i in candidates if len(packs[i][0]) + new <= limit]
        new, best = min(fitting, default=(len(tokens), None))
        if best is None or new > (1 - MIN_SHARED) * len(tokens):
            best = len(packs)
            packs.append((PrefixTree(), []))
            of_group.setdefault(groups[row], []).append(best)
        packs[best][0].add(tokens)
        packs[best][1].append(row)
    return [(members, len(tree)) for tree, members in packs]


def packed_micro_batches(
    batch: TokenBatch, packs: list[tuple[list[int], int]], max_tokens: int, attention: Attention = "auto"
) -> list[tuple[torch.Tensor, PackedInputs]]:
    """`packs` (from group_packs) batched by size into micro-batches of at most `max_tokens` padded pack tokens (or
    one pack): the rows of each (indices into `batch`) and their packed inputs (over `batch.select(rows).trim()`)."""
    out = []
    for indices in width_bins([size for _, size in packs], max_tokens):
        packs_of = [packs[i][0] for i in indices]
        rows = torch.tensor([row for members in packs_of for row in members], device=batch.input_ids.device)
        pack_of_row = [j for j, members in enumerate(packs_of) for _ in members]
        out.append((rows, pack(batch.select(rows).trim(), pack_of_row, attention)))
    return out
