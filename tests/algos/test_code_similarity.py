"""The local code embedder for GTPO's self-supervised shaping: TF-IDF over character n-grams, cosine."""

import pytest
import torch

from agentrl.algos import CharNgramTfidf, cosine_similarity


def test_identical_code_has_similarity_one_and_disjoint_code_zero():
    sim = cosine_similarity(CharNgramTfidf()(["x = 1 + 2", "x = 1 + 2", "QQQQ"]))
    torch.testing.assert_close(sim[0, 1], torch.tensor(1.0))
    assert sim[0, 2].item() == 0.0


def test_similar_code_is_closer_than_different_code():
    sim = cosine_similarity(
        CharNgramTfidf()(["print(sum(range(10)))", "print(sum(range(11)))", "import os; os.listdir('.')"])
    )
    assert sim[0, 1] > 0.7 > sim[0, 2]


def test_empty_code_is_similar_to_nothing():
    sim = cosine_similarity(CharNgramTfidf()(["", "abc", ""]))
    assert torch.equal(sim[0], torch.zeros(3)) and sim[1, 1].item() == pytest.approx(1.0)


def test_dense_embeddings_from_any_embedder():
    sim = cosine_similarity(torch.tensor([[3.0, 4.0], [4.0, 3.0], [0.0, 0.0]]))
    torch.testing.assert_close(sim, torch.tensor([[1.0, 0.96, 0.0], [0.96, 1.0, 0.0], [0.0, 0.0, 0.0]]))
