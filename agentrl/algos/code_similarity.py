"""Code similarity for GTPO's self-supervised reward shaping: a local TF-IDF over character n-grams.

The paper embeds code with a text-embedding model; offline, this module gives a deterministic stand-in that
needs no model and no network. Any `Callable[[Sequence[str]], Tensor]` returning one row per text (dense or
sparse COO) can replace it; `cosine_similarity` turns rows into the `[N, N]` similarity matrix.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor


class CharNgramTfidf:
    """TF-IDF over character n-grams, fitted on the texts it is called with (as scikit-learn's
    `TfidfVectorizer(analyzer="char", ngram_range=..., smooth_idf=True, sublinear_tf=False)`).

    `tf` is the raw n-gram count, `idf = ln((1 + N) / (1 + df)) + 1`, and each row is L2-normalised.
    """

    def __init__(self, ngram_range: tuple[int, int] = (2, 4), lowercase: bool = False):
        self.ngram_range = ngram_range
        self.lowercase = lowercase

    def ngrams(self, text: str) -> Counter[str]:
        if self.lowercase:
            text = text.lower()
        low, high = self.ngram_range
        return Counter(text[i : i + n] for n in range(low, high + 1) for i in range(len(text) - n + 1))

    def __call__(self, texts: Sequence[str]) -> Tensor:
        """`[N, V]` sparse COO tensor of L2-normalised TF-IDF rows (zeros for a text without n-grams)."""
        counts = [self.ngrams(t) for t in texts]
        vocab: dict[str, int] = {}
        rows, cols, tf = [], [], []
        for row, counter in enumerate(counts):
            for gram, count in counter.items():
                rows.append(row)
                cols.append(vocab.setdefault(gram, len(vocab)))
                tf.append(count)
        col = torch.tensor(cols, dtype=torch.long)
        df = torch.zeros(len(vocab)).index_add_(0, col, torch.ones(len(cols)))
        idf = torch.log((1 + len(texts)) / (1 + df)) + 1
        values = torch.tensor(tf, dtype=torch.float32) * idf[col]
        row = torch.tensor(rows, dtype=torch.long)
        norm = torch.zeros(len(texts)).index_add_(0, row, values.square()).sqrt()
        values = values / norm[row]
        return torch.sparse_coo_tensor(
            torch.stack([row, col]), values, (len(texts), max(len(vocab), 1)), check_invariants=False
        ).coalesce()


def cosine_similarity(embeddings: Tensor) -> Tensor:
    """`[N, N]` cosine similarity of the rows of `embeddings` (`[N, D]`, dense or sparse COO).

    A row of zeros has similarity 0 with everything.
    """
    if embeddings.is_sparse:
        with warnings.catch_warnings():  # torch warns that its sparse kernels are beta
            warnings.simplefilter("ignore", UserWarning)
            gram = torch.sparse.mm(embeddings, embeddings.t()).to_dense()
    else:
        gram = embeddings.float() @ embeddings.float().t()
    norm = gram.diagonal().clamp_min(0).sqrt()
    denom = norm[:, None] * norm[None, :]
    return torch.where(denom > 0, gram / denom.clamp_min(torch.finfo(gram.dtype).tiny), 0.0)
