"""pass@k, pass^k and bootstrap confidence intervals over problems.

Per problem, `n` samples were drawn and `c` of them are correct. `pass_at_k` is the unbiased estimate of the
chance that at least one of k samples is correct (Chen et al. 2021, "Evaluating Large Language Models
Trained on Code", Eq. 1 and its numerically stable form); `pass_hat_k` the chance that all k are
(tau-bench's pass^k). Both are exact for k draws without replacement from the n samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agentrl.errors import AgentRLError


def _check(n: int, c: int, k: int) -> None:
    if not 0 <= c <= n:
        raise AgentRLError(f"need 0 <= c <= n, got n={n} samples with c={c} correct")
    if k < 1:
        raise AgentRLError(f"k must be at least 1, got k={k}")
    if k > n:
        raise AgentRLError(f"cannot estimate pass@{k} from n={n} samples: draw at least k={k} samples per problem")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: `1 - C(n - c, k) / C(n, k)`, computed as `1 - prod_{i=n-c+1..n} (1 - k / i)`."""
    _check(n, c, k)
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k: all k of k draws without replacement succeed, `C(c, k) / C(n, k)`.

    Computed as `prod_{i=0..k-1} (c - i) / (n - i)`.
    """
    _check(n, c, k)
    if c < k:
        return 0.0
    i = np.arange(k)
    return float(np.prod((c - i) / (n - i)))


def bootstrap_ci(
    per_problem_values: Sequence[float] | np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap `(low, high)` of the mean over problems, resampling problems with replacement.

    Args:
        per_problem_values: one value per problem (e.g. its pass@k).
        n_boot: bootstrap resamples.
        alpha: 1 - confidence level (0.05 gives a 95% interval).
        seed: seed of the numpy generator, so the interval is reproducible.
    """
    values = np.asarray(per_problem_values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise AgentRLError("bootstrap_ci needs a non-empty 1-D list of per-problem values")
    if not 0 < alpha < 1:
        raise AgentRLError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
