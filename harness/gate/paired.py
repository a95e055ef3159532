"""The statistics of ``python -m harness ab``: a paired comparison of two builds run interleaved on one machine.

Pure numpy/scipy, no I/O: the runner gives, per (endpoint, metric), one value per run of each side, and pair i is
the baseline run and the candidate run of the i-th randomized pair (AB or BA). Whatever drifts from pair to pair
(the machine warming, a neighbour, the page cache) is shared by the two runs of a pair and cancels in their ratio;
that is what lets N = 10 pairs see a 3% change where two independent campaigns of 10 runs see 20-30%.

**Input** (``PairedSeries``): ``baseline`` and ``candidate``, arrays of equal length N (pairs), one value per run in
the metric's unit (a run's p50 in ms from its pooled HDR histogram, CPU ms per request, RSS MB, req/s), all > 0;
``higher_is_worse`` (latency, CPU, RSS: True; throughput: False); an optional absolute ``floor`` in the metric's
unit for values that can be tiny or 0 (compare.py's ``MetricSpec.abs_floor``: 0.001 for the failure ratio).

**Statistics**, per (endpoint, metric):

* log ratios ``d_i = ln(candidate_i / baseline_i)`` (dimensionless). Values below ``floor`` are raised to it first
  (so a change beneath the floor is no ratio at all, and a failure ratio of 0 is usable); a value that is still
  <= 0, NaN or infinite raises ``ValueError`` naming the metric.
* test: Wilcoxon signed-rank on the d_i, two-sided (``scipy.stats.wilcoxon``: exact null distribution for N <= 50
  without ties, a permutation null with ties; zeros dropped). Its smallest reachable p with N pairs is 2 / 2^N
  (every d_i of one sign): 0.25 at N = 3, 0.0625 at N = 5, 0.031 at N = 6, 0.002 at N = 10. scipy's p is never
  reported below that floor.
* effect: the Hodges-Lehmann estimate of the d_i (median of the Walsh averages (d_i + d_j) / 2, i <= j: the
  estimator that goes with the signed-rank test, 95% efficient on normal data where the median is 64%), reported
  as a percent change ``100 * (exp(effect) - 1)`` of the candidate against the baseline.
* 95% CI: percentile bootstrap over pairs (the pairs are resampled together, so the pairing is kept), of the same
  Hodges-Lehmann estimate, ``resamples`` draws (default 10,000) from ``numpy.random.default_rng(seed)``: the same
  inputs and seed give the same interval. Reported in percent like the effect. At N ~ 10 a percentile bootstrap
  is somewhat narrow (coverage nearer 90% than 95%); significance rests on the exact test, not on the interval.
* correction: Benjamini-Hochberg over the family of gated (endpoint, metric) tests
  (``harness.gate.stats.benjamini_hochberg``, scipy's ``false_discovery_control``); non-gated metrics keep their
  raw p. Because BH's smallest adjusted p is the smallest raw p itself, a comparison can reach significance when
  2 / 2^N < alpha, whatever the family's size: N >= 6 pairs at alpha 0.05.
* minimum detectable effect (MDE), normal-approximate: ``mde = (z_{1-alpha/2} + z_{power}) * sd / sqrt(N)`` in log
  units, ``sd`` the sample SD (ddof 1) of the paired log ratios, reported as ``100 * (exp(mde) - 1)`` percent. It
  is the true change that N pairs detect with probability ``power`` (default 0.8) at level alpha (2.80 x
  sd / sqrt(N) at 0.05 and 0.8). It ignores the t distribution's heavier tails at small N (t_{0.975, 9} = 2.26
  against z = 1.96, about 12% optimistic at N = 10) and the signed-rank test's efficiency of 3/pi = 0.955 on
  normal data; infinite when 2 / 2^N >= alpha (the exact test cannot reach alpha).
* tail percentiles (p95, p99) are metrics like any other: the caller pools each run's latencies (HDR histogram)
  and passes that run's percentile, one value per run (``tail_series``). The within-run sampling error of a deep
  percentile is part of each run's value, so the run-to-run spread of the pairs already carries it: the bootstrap
  over pairs needs no nested bootstrap within runs.

**Verdicts**, per metric, with ``threshold`` (percent, default 3), ``alpha`` (0.05) and ``noise_floor`` (percent,
default 1; relative only: the absolute ``floor`` serves the log ratios, not the verdict, since 0.2 ms is already
2.5% of an 8 ms p50):

* **regression** / **improvement**: BH-adjusted p < alpha, and the whole CI lies on one side of zero, and
  |effect| >= noise_floor; regression when that side is worse for the metric (higher for latency, lower for
  throughput). The noise floor keeps a real but negligible shift (code layout, a different binary's alignment:
  fractions of a percent that N = 50 pairs would call significant) from failing a build.
* **no change**: not the above, and the whole CI lies inside [-threshold, +threshold] percent, and the MDE is at
  most the threshold (this N could have detected a change of the threshold's size), and 2 / 2^N < alpha.
* **inconclusive** otherwise, with ``pairs_needed``: the pairs at which the CI, narrowing as 1/sqrt(N) around the
  same effect, would decide, whichever way comes first. With the CI half-width h (its larger side) and the effect
  e, both log units: "no change" needs N * (h / room)^2 pairs, room being the distance from e to the nearer
  threshold (none when e lies beyond it), and at least N * (ln(1 + MDE) / ln(1 + threshold))^2 (the MDE down to
  the threshold); a change needs N * (h / |e|)^2 (the CI clear of zero; none when |e| is under the noise floor).
  The smaller of the two, more than N and at least what lets 2 / 2^N < alpha; None when neither is estimable
  (no spread). It extrapolates from N ratios: a rough figure (within a factor of 2 for half the cases at N = 10).

**Exit codes**, as ``harness.gate.compare``: 0 no regression (``EXIT_NO_REGRESSION``), 4 a gated metric regressed
(``EXIT_REGRESSION``), 5 the comparison cannot reach significance at all (``EXIT_INCONCLUSIVE``: no gated metric
has 2 / 2^N < alpha; 0 with ``allow_inconclusive``). A metric that is merely inconclusive with enough pairs does
not change the exit code, as in compare.py: its line says "inconclusive" and how many pairs would decide.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as _scipy_stats

from harness.gate.stats import benjamini_hochberg

__all__ = [
    "EXIT_INCONCLUSIVE",
    "EXIT_NO_REGRESSION",
    "EXIT_REGRESSION",
    "PairedComparison",
    "PairedOptions",
    "PairedResult",
    "PairedSeries",
    "analyze_series",
    "bootstrap_effect_ci",
    "compare_paired",
    "exit_code",
    "hodges_lehmann",
    "log_ratios",
    "mde_verdict",
    "min_p_value",
    "min_pairs_to_reach",
    "minimum_detectable_effect",
    "pairs_needed",
    "signed_rank_p",
    "suspected_regressions",
    "tail_series",
    "too_noisy",
    "verdict",
]

EXIT_NO_REGRESSION = 0  # the same codes as harness.gate.compare (tests/harness/gate/test_paired.py checks)
EXIT_REGRESSION = 4
EXIT_INCONCLUSIVE = 5
_WALSH_BUDGET = 4_000_000  # Walsh averages held at once while bootstrapping (32 MB of float64)


@dataclass(frozen=True)
class PairedOptions:
    """The paired gate's parameters (see the module docstring): significance level, the "no change" threshold and
    the noise floor (both percent), the bootstrap's confidence, resamples and seed, and the power of the MDE."""

    alpha: float = 0.05
    threshold_percent: float = 3.0
    noise_floor_percent: float = 1.0
    confidence: float = 0.95
    resamples: int = 10_000
    seed: int = 0
    power: float = 0.8
    allow_inconclusive: bool = False
    # a gated metric whose MDE at these pairs exceeds this cannot be a suspected regression (its point estimate
    # wanders beyond the threshold in most A/As); a significant regression on it still fails
    suspect_max_mde_percent: float = 12.0


@dataclass(frozen=True)
class PairedSeries:
    """One (endpoint, metric) of an A/B: the per-pair values of each side (equal lengths, one value per run)."""

    endpoint: str
    metric: str
    baseline: Sequence[float] | np.ndarray
    candidate: Sequence[float] | np.ndarray
    higher_is_worse: bool = True
    unit: str = ""
    floor: float = 0.0
    gated: bool = True
    # this metric's own noise floor (percent), where two processes of one build differ by more than the options'
    # (a level such as RSS: each instance holds its own few percent); None: the options'
    noise_floor_percent: float | None = None


@dataclass
class PairedResult:
    """One (endpoint, metric) compared pair by pair. Percentages are candidate against baseline."""

    endpoint: str
    metric: str
    unit: str
    higher_is_worse: bool
    gated: bool
    pairs: int
    baseline_values: list[float]
    candidate_values: list[float]
    log_ratios: list[float]
    effect_percent: float = math.nan
    ci_percent: tuple[float, float] = (math.nan, math.nan)
    p_value: float = math.nan
    p_adjusted: float = math.nan
    min_p_value: float = 1.0
    mde_percent: float = math.inf
    threshold_percent: float = math.nan
    noise_floor_percent: float = math.nan
    verdict: str = "inconclusive"
    reason: str = ""
    pairs_needed: int | None = None
    effect_log: float = math.nan  # the effect and its CI in log units (ln of the ratio)
    ci_log: tuple[float, float] = (math.nan, math.nan)

    @property
    def name(self) -> str:
        """``"<endpoint> <metric>"``, ``"service <metric>"`` for service-wide metrics."""
        return f"{self.endpoint or 'service'} {self.metric}"

    def line(self) -> str:
        """One line: ``GET /x p50: +3.4% [+2.1%, +4.8%] (p_adj=0.002, 10 pairs): regression`` (p is BH-adjusted)."""
        lo, hi = self.ci_percent
        text = (
            f"{self.name}: {self.effect_percent:+.1f}% [{lo:+.1f}%, {hi:+.1f}%] "
            f"(p_adj={self.p_adjusted:.2g}, {self.pairs} pairs): {self.verdict}"
        )
        if self.verdict == "inconclusive":
            if self.pairs_needed is not None:
                needed = "more than 1000" if self.pairs_needed > 1000 else f"about {self.pairs_needed}"
                text += f" ({needed} pairs would decide)"
            if math.isfinite(self.mde_percent) and self.mde_percent > self.threshold_percent:
                text += f"; could detect only {self.mde_percent:.1f}%"
        return text if self.gated else f"{text} (informational)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists, NaN and infinities become None."""
        data = _json_ready(asdict(self))
        data["line"] = self.line()
        return data


@dataclass
class PairedComparison:
    """Every metric of one A/B; ``exit_code`` as in the module docstring."""

    results: list[PairedResult]
    options: PairedOptions
    unreachable: str | None = None  # why no gated metric can reach significance with these pairs (None: it can)

    @property
    def regressions(self) -> list[PairedResult]:
        return [r for r in self.results if r.gated and r.verdict == "regression"]

    @property
    def verdict(self) -> str:
        """regression, inconclusive (the pairs cannot reach significance, or a gated metric is worse than the
        threshold without being significant: ``suspected_regressions``) or no regression."""
        if self.regressions:
            return "regression"
        suspects = suspected_regressions(self.results, self.options.suspect_max_mde_percent)
        return "inconclusive" if self.unreachable or suspects else "no regression"

    @property
    def exit_code(self) -> int:
        return exit_code(self.results, self.options.alpha, self.options.allow_inconclusive,
                         self.options.suspect_max_mde_percent)  # fmt: skip

    def lines(self) -> list[str]:
        return [r.line() for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "inconclusive_reason": self.unreachable,
            "options": _json_ready(asdict(self.options)),
            "metrics": [r.to_dict() for r in self.results],
        }


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _percent(log_value: float) -> float:
    return 100.0 * math.expm1(log_value)


def log_ratios(
    baseline: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    metric: str = "",
    *,
    floor: float = 0.0,
) -> np.ndarray:
    """ln(candidate_i / baseline_i) per pair. Values below ``floor`` (> 0) are raised to it first; ValueError,
    naming ``metric``, for unequal lengths, no pairs, or a value that is then <= 0, NaN or infinite."""
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(candidate, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"{metric}: baseline and candidate need one value per pair each, got {a.shape} and {b.shape}")
    if floor > 0:
        a, b = np.maximum(a, floor), np.maximum(b, floor)  # NaN stays NaN and is refused below
    for side, values in (("baseline", a), ("candidate", b)):
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(
                f"{metric}: {side} value {float(values[first])!r} in pair {first} is not a positive number; "
                "a paired log ratio needs every value > 0 (pass the metric's floor for metrics that can be 0)"
            )
    return np.log(b / a)


def min_p_value(pairs: int) -> float:
    """The smallest two-sided p the exact signed-rank test gives with ``pairs`` nonzero differences: 2 / 2^N (all of
    one sign), at most 1. N = 3: 0.25; N = 10: 0.00195."""
    return 1.0 if pairs < 1 else min(1.0, 2.0 / 2.0**pairs)


def min_pairs_to_reach(alpha: float) -> int:
    """The fewest pairs with which the exact signed-rank test can give p < alpha (after BH too: see the module
    docstring). 6 at alpha 0.05."""
    n = 1
    while min_p_value(n) >= alpha:
        n += 1
    return n


def signed_rank_p(ratios: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of the log ratios (exact for small N, zeros dropped); 1.0 when every ratio
    is 0; never below ``min_p_value(N)``."""
    d = np.asarray(ratios, dtype=float)
    if not np.any(d != 0):
        return 1.0
    p = float(_scipy_stats.wilcoxon(d, alternative="two-sided", zero_method="wilcox").pvalue)
    return max(p, min_p_value(d.size))


def hodges_lehmann(ratios: np.ndarray) -> np.ndarray | float:
    """The one-sample Hodges-Lehmann estimate along the last axis: the median of the Walsh averages
    (d_i + d_j) / 2, i <= j. 1-D input gives a float, 2-D input one estimate per row."""
    d = np.asarray(ratios, dtype=float)
    i, j = np.triu_indices(d.shape[-1])
    walsh = (np.take(d, i, axis=-1) + np.take(d, j, axis=-1)) / 2.0
    k = walsh.shape[-1] // 2  # the median by partition: 4x faster than np.median for the bootstrap's rows
    if walsh.shape[-1] % 2:
        estimate = np.partition(walsh, k, axis=-1)[..., k]
    else:
        middle = np.partition(walsh, [k - 1, k], axis=-1)
        estimate = (middle[..., k - 1] + middle[..., k]) / 2.0
    return float(estimate) if d.ndim == 1 else estimate


def bootstrap_effect_ci(
    ratios: np.ndarray, *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap CI (log units) of the Hodges-Lehmann estimate, resampling whole pairs. Deterministic
    for a given ``seed``; (nan, nan) without ratios."""
    d = np.asarray(ratios, dtype=float)
    if d.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, d.size, size=(resamples, d.size))
    walsh = d.size * (d.size + 1) // 2
    chunk = max(1, _WALSH_BUDGET // walsh)
    estimates = np.concatenate([hodges_lehmann(d[draws[k : k + chunk]]) for k in range(0, resamples, chunk)])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return (float(low), float(high))


def _mde_log(sd: float, pairs: int, alpha: float, power: float) -> float:
    if pairs < min_pairs_to_reach(alpha) or not math.isfinite(sd):
        return math.inf
    z = _scipy_stats.norm.ppf(1.0 - alpha / 2.0) + _scipy_stats.norm.ppf(power)
    return float(z * sd / math.sqrt(pairs))


def minimum_detectable_effect(
    ratios: Sequence[float] | np.ndarray, pairs: int | None = None, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The change (percent) that ``pairs`` pairs detect with this ``power``, from the SD of paired log ratios
    (an A/A's, or the comparison's own): ``100 * (exp((z_{1-alpha/2} + z_power) * sd / sqrt(pairs)) - 1)``,
    normal-approximate. ``pairs`` defaults to len(ratios) (an A/A of 20 pairs can state the MDE of 10); inf when
    2 / 2^pairs >= alpha or fewer than 2 ratios give no SD."""
    d = np.asarray(ratios, dtype=float)
    pairs = d.size if pairs is None else pairs
    if d.size < 2:
        return math.inf
    mde = _mde_log(float(np.std(d, ddof=1)), pairs, alpha, power)
    return _percent(mde) if math.isfinite(mde) else math.inf


def mde_verdict(label: str, mde_percent: float, threshold_percent: float) -> str:
    """The verdict ``label``, but "inconclusive" in place of "no change" when the MDE exceeds the threshold (the
    comparison could not have detected a change of the threshold's size); any other verdict unchanged."""
    if label == "no change" and not mde_percent <= threshold_percent:
        return "inconclusive"
    return label


def verdict(
    p_adjusted: float,
    effect: float,
    ci: tuple[float, float],
    higher_is_worse: bool,
    *,
    threshold_percent: float = 3.0,
    noise_floor_percent: float = 1.0,
    alpha: float = 0.05,
    mde_percent: float = 0.0,
) -> str:
    """The three-way verdict of the module docstring. ``effect`` and ``ci`` in log units; ``mde_percent`` inf when
    the pairs cannot reach alpha."""
    low, high = ci
    clear_of_zero = low > 0 or high < 0
    if p_adjusted < alpha and clear_of_zero and abs(_percent(effect)) >= noise_floor_percent:
        worse = (effect > 0) == higher_is_worse
        return "regression" if worse else "improvement"
    inside = _percent(low) >= -threshold_percent and _percent(high) <= threshold_percent
    return mde_verdict("no change" if inside else "inconclusive", mde_percent, threshold_percent)


def pairs_needed(
    pairs: int,
    effect: float,
    ci: tuple[float, float],
    threshold_percent: float,
    *,
    mde_percent: float = 0.0,
    noise_floor_percent: float = 1.0,
    alpha: float = 0.05,
) -> int | None:
    """The pairs at which the CI, narrowing as 1/sqrt(N) around the same ``effect`` (log units), would decide,
    whichever way comes first (see the module docstring); None when not estimable."""
    low, high = ci
    half = max(high - effect, effect - low)
    if not (math.isfinite(half) and half > 0 and pairs > 0):
        return None
    room = min(math.log1p(threshold_percent / 100.0) - effect, effect - math.log1p(-threshold_percent / 100.0))
    inside = pairs * (half / room) ** 2 if room > 0 else math.inf  # "no change": the CI inside the threshold ...
    if math.isfinite(mde_percent) and mde_percent > threshold_percent:  # ... from pairs that detect the threshold
        ratio = math.log1p(mde_percent / 100.0) / math.log1p(threshold_percent / 100.0)
        inside = max(inside, pairs * ratio**2)
    practical = effect != 0 and abs(_percent(effect)) >= noise_floor_percent
    clear = pairs * (half / abs(effect)) ** 2 if practical else math.inf  # a change: the CI clear of zero
    needed = min(inside, clear)
    if not math.isfinite(needed):
        return None
    return max(math.ceil(needed - 1e-9), pairs + 1, min_pairs_to_reach(alpha))


def _seed(options: PairedOptions, endpoint: str, metric: str) -> int:
    return options.seed ^ zlib.crc32(f"{endpoint}|{metric}".encode())


def analyze_series(series: PairedSeries, options: PairedOptions | None = None) -> PairedResult:
    """Ratios, the signed-rank p (unadjusted: ``p_adjusted`` is the raw p until ``compare_paired`` corrects it),
    the effect, its CI and the MDE of one metric; no verdict yet. ValueError on unusable values."""
    options = options or PairedOptions()
    d = log_ratios(series.baseline, series.candidate, series.metric, floor=series.floor)
    a = np.asarray(series.baseline, dtype=float)
    result = PairedResult(
        endpoint=series.endpoint,
        metric=series.metric,
        unit=series.unit,
        higher_is_worse=series.higher_is_worse,
        gated=series.gated,
        pairs=int(d.size),
        baseline_values=a.tolist(),
        candidate_values=np.asarray(series.candidate, dtype=float).tolist(),
        log_ratios=d.tolist(),
        threshold_percent=options.threshold_percent,
    )
    result.p_value = result.p_adjusted = signed_rank_p(d)
    result.min_p_value = min_p_value(d.size)
    effect = hodges_lehmann(d)
    ci = bootstrap_effect_ci(
        d,
        confidence=options.confidence,
        resamples=options.resamples,
        seed=_seed(options, series.endpoint, series.metric),
    )
    result.effect_percent = _percent(effect)
    result.ci_percent = (_percent(ci[0]), _percent(ci[1]))
    result.effect_log, result.ci_log = effect, ci
    result.mde_percent = minimum_detectable_effect(d, alpha=options.alpha, power=options.power)
    result.noise_floor_percent = (
        options.noise_floor_percent if series.noise_floor_percent is None else series.noise_floor_percent
    )
    return result


def _decide(result: PairedResult, options: PairedOptions) -> None:
    effect, ci = result.effect_log, result.ci_log
    result.verdict = verdict(
        result.p_adjusted,
        effect,
        ci,
        result.higher_is_worse,
        threshold_percent=options.threshold_percent,
        noise_floor_percent=result.noise_floor_percent,
        alpha=options.alpha,
        mde_percent=result.mde_percent,
    )
    t = options.threshold_percent
    if result.verdict in ("regression", "improvement"):
        result.reason = (
            f"significant (p_adj {result.p_adjusted:.2g} < {options.alpha:g}), CI clear of zero, "
            f"|effect| >= noise floor {result.noise_floor_percent:.2g}%"
        )
    elif result.verdict == "no change":
        result.reason = f"the 95% CI lies inside ±{t:g}% and {result.pairs} pairs detect {result.mde_percent:.1f}%"
    else:
        result.pairs_needed = pairs_needed(
            result.pairs,
            effect,
            ci,
            t,
            mde_percent=result.mde_percent,
            noise_floor_percent=result.noise_floor_percent,
            alpha=options.alpha,
        )
        if result.min_p_value >= options.alpha:
            result.reason = (
                f"{result.pairs} pairs cannot reach significance (smallest possible p {result.min_p_value:.2g}, "
                f"alpha {options.alpha:g}); use at least {min_pairs_to_reach(options.alpha)} pairs"
            )
        elif result.mde_percent > t:
            result.reason = (
                f"too noisy: {result.pairs} pairs detect {result.mde_percent:.1f}%, more than the ±{t:g}% threshold"
            )
        else:
            result.reason = f"the 95% CI reaches beyond ±{t:g}% without a significant change"


def compare_paired(series: Sequence[PairedSeries], options: PairedOptions | None = None) -> PairedComparison:
    """Analyze every metric, correct the gated family's p-values (Benjamini-Hochberg), give every metric its
    verdict. Results keep the input order. ValueError (naming the metric) on unusable values."""
    options = options or PairedOptions()
    results = [analyze_series(s, options) for s in series]
    family = [r for r in results if r.gated]
    adjusted = benjamini_hochberg(np.asarray([r.p_value for r in family]))
    for result, p in zip(family, adjusted, strict=True):
        result.p_adjusted = float(p)
    for result in results:
        _decide(result, options)
    comparison = PairedComparison(results=results, options=options)
    if _unreachable(results, options.alpha):
        pairs = min((r.pairs for r in family), default=0)
        comparison.unreachable = (
            f"inconclusive: {pairs} pairs cannot reach significance (smallest possible p {min_p_value(pairs):.2g}, "
            f"alpha {options.alpha:g}); use --pairs >= {min_pairs_to_reach(options.alpha)}"
        )
    return comparison


def _unreachable(results: Sequence[PairedResult], alpha: float) -> bool:
    gated = [r for r in results if r.gated]
    return bool(gated) and all(r.min_p_value >= alpha for r in gated)


def suspected_regressions(results: Sequence[PairedResult], max_mde_percent: float = math.inf) -> list[PairedResult]:
    """Gated metrics that are inconclusive although their effect is worse than the threshold and worse than their
    MDE: a change as large as these pairs could have detected, which the test after the BH correction still did not
    confirm. An effect within the MDE is the metric's usual wander (in A/As at 10 pairs of 30 s, tails with MDEs of
    6-9% strayed past 3% in one comparison of two) and leaves the metric inconclusive without holding the gate, as
    does a metric without a finite MDE (an A/A exited 5 on a batch p99 with values in 4 pairs of 10, at +14%).
    ``max_mde_percent`` is kept for the callers' signature: ``too_noisy`` names the metrics it bounds."""
    suspects = []
    for r in results:
        if not r.gated or r.verdict != "inconclusive" or not math.isfinite(r.effect_percent):
            continue
        worse = r.effect_percent if r.higher_is_worse else -r.effect_percent
        # Within the MDE: the metric's usual wander. No finite MDE: too few of its pairs have values (a tail
        # percentile NaN in most runs) to detect any change, so its estimate says nothing either.
        if not math.isfinite(r.mde_percent) or worse <= r.mde_percent:
            continue
        if worse > r.threshold_percent:
            suspects.append(r)
    return suspects


def too_noisy(results: Sequence[PairedResult], max_mde_percent: float) -> list[PairedResult]:
    """Gated, inconclusive metrics whose MDE at these pairs exceeds ``max_mde_percent``: judged only by a
    significant change, named as such in the verdict."""
    return [r for r in results if r.gated and r.verdict == "inconclusive" and r.mde_percent > max_mde_percent]


def exit_code(
    results: Sequence[PairedResult], alpha: float = 0.05, allow_inconclusive: bool = False,
    max_mde_percent: float = math.inf,
) -> int:  # fmt: skip
    """4 when a gated metric regressed; else 5 (0 with ``allow_inconclusive``) when no gated metric could reach
    significance, or when a gated metric is a suspected regression (``suspected_regressions``: worse than the
    threshold but not significant), so a slowdown the pairs could not confirm never passes as "no regression";
    else 0. Other inconclusive metrics leave it at 0."""
    if any(r.gated and r.verdict == "regression" for r in results):
        return EXIT_REGRESSION
    if (_unreachable(results, alpha) or suspected_regressions(results, max_mde_percent)) and not allow_inconclusive:
        return EXIT_INCONCLUSIVE
    return EXIT_NO_REGRESSION


def tail_series(
    endpoint: str,
    metric: str,
    baseline_per_run: Sequence[float] | np.ndarray,
    candidate_per_run: Sequence[float] | np.ndarray,
    *,
    floor: float = 0.2,
    unit: str = "ms",
    gated: bool = True,
) -> PairedSeries:
    """A tail percentile (``metric`` like "p99") as a paired series: each value is one run's percentile over that
    run's pooled latencies (its HDR histogram, pooled by the caller); NaN (too few requests above the percentile)
    is refused by ``log_ratios``, so drop such pairs first. Higher is worse; the bootstrap over pairs carries the
    within-run sampling error of the percentile (see the module docstring)."""
    return PairedSeries(
        endpoint, metric, np.asarray(baseline_per_run, dtype=float), np.asarray(candidate_per_run, dtype=float),
        higher_is_worse=True, unit=unit, floor=floor, gated=gated,
    )  # fmt: skip
