"""pass@k and pass^k against brute force over all k-subsets; bootstrap intervals over problems."""

from itertools import combinations

import numpy as np
import pytest

from agentrl.errors import AgentRLError
from agentrl.evals import bootstrap_ci, pass_at_k, pass_hat_k

SMALL = [(n, c, k) for n in range(1, 8) for c in range(n + 1) for k in range(1, n + 1)]


def brute_force(n: int, c: int, k: int) -> tuple[float, float]:
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(samples, k))
    return (
        sum(any(s) for s in subsets) / len(subsets),
        sum(all(s) for s in subsets) / len(subsets),
    )


@pytest.mark.parametrize(("n", "c", "k"), SMALL)
def test_matches_enumeration_of_all_k_subsets(n, c, k):
    any_correct, all_correct = brute_force(n, c, k)
    assert pass_at_k(n, c, k) == pytest.approx(any_correct, abs=1e-12)
    assert pass_hat_k(n, c, k) == pytest.approx(all_correct, abs=1e-12)


def test_edges():
    assert pass_at_k(10, 0, 3) == 0.0 and pass_hat_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 10, 3) == 1.0 and pass_hat_k(10, 10, 3) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)


def test_large_n_is_stable():
    assert 0.0 < pass_at_k(2000, 1, 1000) == pytest.approx(0.5)
    assert pass_hat_k(2000, 1999, 1000) == pytest.approx(0.5)


def test_k_larger_than_n_is_an_error():
    with pytest.raises(AgentRLError, match="n=4 samples"):
        pass_at_k(4, 1, 5)
    with pytest.raises(AgentRLError, match="n=4 samples"):
        pass_hat_k(4, 1, 5)


def test_impossible_counts_are_errors():
    with pytest.raises(AgentRLError):
        pass_at_k(4, 5, 1)
    with pytest.raises(AgentRLError):
        pass_at_k(4, 1, 0)


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible():
    values = np.random.default_rng(1).random(50)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    assert (low, high) == bootstrap_ci(values)
    assert bootstrap_ci(values, seed=1) != (low, high)
    narrow = bootstrap_ci(values, alpha=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_ci_of_constant_values_is_a_point():
    assert bootstrap_ci([0.25] * 10) == pytest.approx((0.25, 0.25))


def test_bootstrap_ci_needs_values():
    with pytest.raises(AgentRLError, match="non-empty"):
        bootstrap_ci([])
