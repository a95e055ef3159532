"""The statistics of the regression gate: tests, corrections, confidence intervals, power, change points.

Every function takes plain numpy arrays and is vectorized where the gate's proof needs thousands of simulated
comparisons (``tests/harness/gate/test_stats.py``). The method, in one place:

* **Test**: Mann-Whitney U, two-sided (``scipy.stats.mannwhitneyu``; exact for small samples without ties). It
  compares the whole run-to-run distributions, assumes nothing about their shape and is not moved by one outlier.
* **Correction**: over the metrics of one comparison, Benjamini-Hochberg (false discovery rate, the default: it
  keeps the power the many correlated percentiles of one endpoint would otherwise cost) or Holm (family-wise).
  Only metrics actually tested count in the family.
* **Effect**: the ratio of medians candidate / baseline, with a percentile-bootstrap 95% confidence interval.
* **Runs needed**: the normal approximation of the t-test's sample size, divided by Mann-Whitney's asymptotic
  relative efficiency 3/pi, and at least the smallest N whose exact test can reach the significance level at all
  (2 / C(2N, N) < alpha).
* **Change points**: binary segmentation of a history; each split maximizes a mean-shift statistic on ranks and is
  kept when a permutation test (seeded) finds it significant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _scipy_stats

__all__ = [
    "ARE_MANN_WHITNEY",
    "benjamini_hochberg",
    "bootstrap_ratio_ci",
    "change_points",
    "holm",
    "mann_whitney_p",
    "min_detectable_effect",
    "min_p_value",
    "min_runs_for_alpha",
    "min_runs_to_reach",
    "robust_sd",
    "runs_needed",
]

ARE_MANN_WHITNEY = 3.0 / math.pi  # asymptotic relative efficiency against the t-test, normal data


def mann_whitney_p(baseline: np.ndarray, candidate: np.ndarray) -> np.ndarray | float:
    """Two-sided Mann-Whitney U p-value(s) along the last axis; 1.0 where both sides hold one same value.

    1-D inputs give a float; 2-D inputs (one comparison per row) give an array. NaNs are not allowed here: drop them
    first.
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if a.ndim == 1:
        if np.ptp(np.concatenate([a, b])) == 0:
            return 1.0  # every value equal: no evidence of any difference (scipy would return NaN)
        return float(_scipy_stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    p = np.asarray(_scipy_stats.mannwhitneyu(a, b, alternative="two-sided", axis=-1).pvalue, dtype=float)
    return np.where(np.isnan(p), 1.0, p)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (family-wise error), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def benjamini_hochberg(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg-adjusted p-values (false discovery rate), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return p
    return np.asarray(_scipy_stats.false_discovery_control(p, method="bh"), dtype=float)


def bootstrap_ratio_ci(
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    quantile: float = 0.5,
    confidence: float = 0.95,
    resamples: int = 2000,
    max_sample: int = 5000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of quantile(candidate) / quantile(baseline) (default: medians).

    Each side is resampled independently; a side longer than ``max_sample`` (per-request latencies) is first
    subsampled to that many values without replacement, which widens the interval slightly rather than hide noise.
    Returns (nan, nan) when a side is empty or the baseline's quantile is 0.
    """
    rng = np.random.default_rng(seed)
    sides = []
    for values in (np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)):
        if values.size == 0:
            return (math.nan, math.nan)
        if values.size > max_sample:
            values = rng.choice(values, size=max_sample, replace=False)
        draws = values[rng.integers(0, values.size, size=(resamples, values.size))]
        sides.append(np.quantile(draws, quantile, axis=1))
    base, cand = sides
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = cand / base
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size < resamples // 2:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return (float(low), float(high))


def robust_sd(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (the SD for normal data, not moved by a few outliers); the plain SD
    when more than half the values are equal (MAD 0); 0.0 for fewer than two values."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return 0.0
    mad = float(np.median(np.abs(v - np.median(v)))) * 1.4826
    return mad if mad > 0 else float(np.std(v, ddof=1))


def min_runs_for_alpha(alpha: float) -> int:
    """The smallest N per side for which the exact two-sided Mann-Whitney test can give p < alpha at all."""
    n = 1
    while 2.0 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


def min_p_value(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value the exact Mann-Whitney test can give with ``n_a`` and ``n_b`` values (every
    value of one side above every value of the other): 2 / C(n_a + n_b, n_a), at most 1. 3 vs 3: 0.1."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def min_runs_to_reach(alpha: float, family: int = 1, correction: str = "bh") -> int:
    """The smallest N per side with which a comparison of ``family`` gated tests can call anything significant
    after the correction: Benjamini-Hochberg's smallest adjusted p is the smallest p itself (when every test gives
    it), Holm's is ``family`` times it."""
    factor = max(1, family) if correction == "holm" else 1
    n = 1
    while min_p_value(n, n) * factor >= alpha:
        n += 1
    return n


def runs_needed(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Runs per side to detect a shift of ``effect`` (same unit as ``sd``) with this ``power``, approximately.

    None when ``effect`` is 0 (nothing to detect); ``min_runs_for_alpha(alpha)`` at least.
    """
    if effect <= 0 or not math.isfinite(sd):
        return None
    z = _scipy_stats.norm.ppf(1.0 - alpha / 2.0) + _scipy_stats.norm.ppf(power)
    n = 2.0 * (z * sd / effect) ** 2 / ARE_MANN_WHITNEY
    return max(min_runs_for_alpha(alpha), math.ceil(n - 1e-9))  # 10.000000001 runs are 10


def min_detectable_effect(sd: float, runs: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest shift (same unit as ``sd``) that ``runs`` runs per side detect with this ``power``,
    approximately; inf when the exact test cannot reach ``alpha`` with that many runs."""
    if runs < min_runs_for_alpha(alpha):
        return math.inf
    z = _scipy_stats.norm.ppf(1.0 - alpha / 2.0) + _scipy_stats.norm.ppf(power)
    return float(z * sd * math.sqrt(2.0 / (runs * ARE_MANN_WHITNEY)))


def _best_split(ranks: np.ndarray, min_size: int) -> tuple[int, np.ndarray]:
    """For each row of ``ranks`` (permutations x n), the split index maximizing the standardized mean shift and
    its statistic; returns (index of the first row's best split, statistic of every row)."""
    n = ranks.shape[-1]
    k = np.arange(min_size, n - min_size + 1)
    csum = np.cumsum(ranks, axis=-1)
    total = csum[..., -1:]
    left_mean = csum[..., k - 1] / k
    right_mean = (total - csum[..., k - 1]) / (n - k)
    stat = k * (n - k) / n * (left_mean - right_mean) ** 2
    best = stat.argmax(axis=-1)
    return int(k[best.flat[0]]), stat.max(axis=-1)


def change_points(
    series: Sequence[float] | np.ndarray,
    *,
    min_size: int = 3,
    alpha: float = 0.05,
    permutations: int = 499,
    seed: int = 0,
) -> list[int]:
    """Indices where a history steps to another level: each ``i`` starts a new segment (``series[i:]``).

    Binary segmentation: a segment's best split (largest between-halves difference of mean ranks, segments of at
    least ``min_size`` points) is kept when fewer than ``alpha`` of ``permutations`` shuffles of that segment
    split as well; then both halves are searched again. Ranks make one wild point unable to fake a step.
    NaNs are dropped first (indices refer to the series without them). Deterministic for a given ``seed``.
    """
    values = np.asarray(series, dtype=float)
    values = values[np.isfinite(values)]
    rng = np.random.default_rng(seed)
    found: list[int] = []
    pending = [(0, values.size)]
    while pending:
        lo, hi = pending.pop()
        if hi - lo < 2 * min_size:
            continue
        ranks = _scipy_stats.rankdata(values[lo:hi])
        split, observed = _best_split(ranks[None, :], min_size)
        shuffled = rng.permuted(np.broadcast_to(ranks, (permutations, ranks.size)), axis=1)
        _, null = _best_split(shuffled, min_size)
        p = (1 + np.count_nonzero(null >= observed[0] - 1e-12)) / (permutations + 1)
        if p < alpha:
            found.append(lo + split)
            pending += [(lo, lo + split), (lo + split, hi)]
    return sorted(found)
