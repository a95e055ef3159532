"""The paired statistics of ``ab`` (harness.gate.paired) on synthetic pairs with known answers.

Noise model: pair k's two runs share a drift ``exp(N(0, drift))`` (the machine's state during that pair: warming,
a neighbour, the page cache) and each run has its own lognormal noise ``exp(N(0, run_sd))``; the candidate is
``effect`` times slower. The pairing must cancel the drift; an unpaired test cannot. Simulations use 1,000 bootstrap
resamples instead of the default 10,000 to stay fast; the verdict rules are the same.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from harness.gate import compare, stats
from harness.gate import paired as P

N = 10  # pairs
BASE_MS = 8.0
ENDPOINT = "GET /v1/online/{group}/{feature}/{entity_id}"
FAST = P.PairedOptions(resamples=1000)


def _pairs(
    rng: np.random.Generator, n: int = N, *, effect: float = 1.0, run_sd: float = 0.01, drift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    shared = np.exp(rng.normal(0.0, drift, n))
    base = BASE_MS * shared * np.exp(rng.normal(0.0, run_sd, n))
    cand = BASE_MS * effect * shared * np.exp(rng.normal(0.0, run_sd, n))
    return base, cand


def _one(base: np.ndarray, cand: np.ndarray, options: P.PairedOptions = FAST, **kw: object) -> P.PairedResult:
    series = P.PairedSeries(ENDPOINT, "p50", base, cand, unit="ms", floor=0.2, **kw)  # type: ignore[arg-type]
    return P.compare_paired([series], options).results[0]


def _trials(seed: int, trials: int, *, unpaired: bool = False, **kw: float) -> tuple[list[P.PairedResult], list[float]]:
    """``trials`` single-metric comparisons; with ``unpaired``, also the Mann-Whitney p of each one's same data."""
    rng = np.random.default_rng(seed)
    results, mann_whitney = [], []
    for _ in range(trials):
        base, cand = _pairs(rng, **kw)
        results.append(_one(base, cand))
        if unpaired:
            mann_whitney.append(float(stats.mann_whitney_p(base, cand)))
    return results, mann_whitney


def _rate(results: list[P.PairedResult], verdict: str) -> float:
    return sum(r.verdict == verdict for r in results) / len(results)


def test_a_a_with_shared_drift_flags_at_most_5_percent() -> None:
    results, _ = _trials(20261203, 400, run_sd=0.02, drift=0.10)
    flagged = _rate(results, "regression") + _rate(results, "improvement")
    assert _rate(results, "regression") <= 0.05, f"A/A false regression rate {_rate(results, 'regression'):.3f}"
    assert flagged <= 0.05, f"A/A false regression or improvement rate {flagged:.3f}"
    assert _rate(results, "no change") >= 0.50, _rate(results, "no change")  # unpaired, the drift would blur it all
    for r in results:  # "no change" only ever with the CI inside the threshold
        if r.verdict == "no change":
            assert r.ci_percent[0] >= -3.0 and r.ci_percent[1] <= 3.0, r.line()


def test_a_3_percent_slowdown_is_caught_at_10_pairs() -> None:
    results, _ = _trials(20261204, 200, effect=1.03, run_sd=0.01)
    power = _rate(results, "regression")
    assert power >= 0.90, f"3% slowdown caught in {power:.3f} of trials"
    assert _rate(results, "improvement") == 0.0


def test_pairing_cancels_a_strong_drift_that_hides_3_percent_from_an_unpaired_test() -> None:
    results, mann_whitney = _trials(20261205, 200, unpaired=True, effect=1.03, run_sd=0.01, drift=0.15)
    power = _rate(results, "regression")
    unpaired = float(np.mean(np.asarray(mann_whitney) < 0.05))
    assert power >= 0.90, f"paired: 3% slowdown under drift caught in {power:.3f} of trials"
    assert unpaired < 0.5, f"Mann-Whitney on the same data caught it in {unpaired:.3f} of trials"


def test_shuffled_pairs_lose_the_drift_test() -> None:
    """The drift test can fail: the same data with the pairing broken (candidate runs shuffled) is not caught."""
    rng = np.random.default_rng(20261206)
    caught = 0
    for _ in range(60):
        base, cand = _pairs(rng, effect=1.03, run_sd=0.01, drift=0.15)
        caught += _one(base, rng.permutation(cand)).verdict == "regression"
    assert caught / 60 < 0.5, caught


def test_faster_is_an_improvement_and_throughput_is_worse_when_lower() -> None:
    rng = np.random.default_rng(7)
    base, cand = _pairs(rng, effect=0.95)
    assert _one(base, cand).verdict == "improvement"
    assert _one(base, cand, higher_is_worse=False).verdict == "regression"  # 5% less throughput
    assert _one(cand, base, higher_is_worse=False).verdict == "improvement"


def test_no_change_needs_the_whole_ci_inside_the_threshold() -> None:
    zero = math.log(1.0)
    rule = {"threshold_percent": 3.0, "noise_floor_percent": 1.0, "mde_percent": 2.0}
    inside = (math.log(0.971), math.log(1.029))
    assert P.verdict(0.5, zero, inside, True, **rule) == "no change"
    assert P.verdict(0.5, zero, (math.log(0.971), math.log(1.031)), True, **rule) == "inconclusive"
    assert P.verdict(0.5, zero, (math.log(0.969), math.log(1.01)), True, **rule) == "inconclusive"
    # significant and clear of zero, but under the 1% noise floor: no change when inside the threshold
    assert P.verdict(0.001, math.log(1.005), (math.log(1.002), math.log(1.008)), True, **rule) == "no change"
    assert P.verdict(0.001, math.log(1.02), (math.log(1.01), math.log(1.03)), True, **rule) == "regression"
    # significant but the CI touches zero: not a regression
    assert P.verdict(0.001, math.log(1.02), (zero, math.log(1.04)), True, **rule) == "inconclusive"
    # a CI inside the threshold from pairs that could not detect 3%: inconclusive, never no change
    assert P.verdict(0.5, zero, inside, True, **{**rule, "mde_percent": 3.5}) == "inconclusive"
    assert P.mde_verdict("no change", math.inf, 3.0) == "inconclusive"
    assert P.mde_verdict("regression", math.inf, 3.0) == "regression"


def test_large_noise_is_inconclusive_with_the_pairs_that_would_decide() -> None:
    rng = np.random.default_rng(20261207)
    result = _one(*_pairs(rng, run_sd=0.06))
    assert result.verdict == "inconclusive", result.line()
    assert result.pairs_needed is not None and 20 <= result.pairs_needed <= 400, result.pairs_needed
    assert "pairs would decide" in result.line()
    # about right on average: ratio sd 0.06 x sqrt(2) = 0.085 brings the MDE, 2.80 x 0.085 / sqrt(N), under
    # ln(1.03) = 0.0296 at N = 65 (the CI, +-1.96 x 1.02 x 0.085 / sqrt(N), fits inside ±3% already at N = 34)
    needed = [r.pairs_needed for r in (_one(*_pairs(rng, run_sd=0.06)) for _ in range(30)) if r.pairs_needed]
    assert len(needed) >= 25 and 32 <= np.median(needed) <= 130, sorted(needed)


def test_pairs_needed_formula() -> None:
    t = math.log1p(0.03)
    # effect 0, half-width 2x the room: 4x the pairs
    assert P.pairs_needed(10, 0.0, (-2 * t, 2 * t), 3.0) == 40
    # effect beyond the threshold: pairs to clear zero
    assert P.pairs_needed(10, 0.05, (0.0, 0.10), 3.0) == 11  # beyond the threshold: clear zero; 10 x 1^2, plus one
    # +2%, half-width 0.04: inside needs 10 x (0.04 / (ln 1.03 - ln 1.02))^2 = 168.1, clear of zero 10 x (0.04 /
    # ln 1.02)^2 = 40.8: the first to decide
    e = math.log(1.02)
    assert P.pairs_needed(10, e, (e - 0.04, e + 0.04), 3.0) == 41
    assert P.pairs_needed(10, e, (e - 0.04, e + 0.04), 3.0, noise_floor_percent=2.5) == 169
    # the MDE must come down to the threshold too: 10 x (ln 1.06 / ln 1.03)^2 = 38.9
    assert P.pairs_needed(10, 0.0, (-t / 2, t / 2), 3.0, mde_percent=6.0) == 39
    assert P.pairs_needed(10, 0.0, (0.0, 0.0), 3.0) is None  # no spread: not estimable
    assert P.pairs_needed(3, 0.0, (-t / 2, t / 2), 3.0) == 6  # at least what reaches alpha 0.05


def test_too_few_pairs_cannot_reach_significance_after_bh() -> None:
    rng = np.random.default_rng(8)
    series = [P.PairedSeries(ENDPOINT, m, *_pairs(rng, 3, effect=1.2)) for m in ("p50", "p90", "p99")]
    comparison = P.compare_paired(series, FAST)
    assert [r.verdict for r in comparison.results] == ["inconclusive"] * 3
    assert all(r.min_p_value == 0.25 and r.mde_percent == math.inf for r in comparison.results)
    assert comparison.unreachable and "use --pairs >= 6" in comparison.unreachable
    assert comparison.verdict == "inconclusive"
    assert comparison.exit_code == P.EXIT_INCONCLUSIVE
    allowed = P.PairedOptions(resamples=1000, allow_inconclusive=True)
    assert P.compare_paired(series, allowed).exit_code == P.EXIT_NO_REGRESSION
    assert P.min_pairs_to_reach(0.05) == 6 and P.min_p_value(5) == 0.0625 and P.min_p_value(10) == 2 / 1024
    six = [P.PairedSeries(ENDPOINT, m, *_pairs(rng, 6, effect=1.2)) for m in ("p50", "p90", "p99")]
    comparison = P.compare_paired(six, FAST)
    assert comparison.unreachable is None
    assert [r.verdict for r in comparison.results] == ["regression"] * 3
    assert comparison.exit_code == P.EXIT_REGRESSION


def test_benjamini_hochberg_over_the_gated_family_by_hand() -> None:
    base = np.full(N, BASE_MS)
    ranks = np.arange(1, N + 1) / 1000.0  # |log ratio| ranks 1..10
    all_up = base * np.exp(ranks)  # exact signed-rank p: 2 x 1/1024
    one_down = base * np.exp(ranks * np.where(np.arange(N) == 0, -1, 1))  # rank 1 negative: 2 x 2/1024
    mixed = base * np.exp(ranks * np.array([1, -1, -1, 1, 1, -1, -1, 1, 1, -1]))  # T+ 27, T- 28
    series = [
        P.PairedSeries("a", "p50", base, all_up),
        P.PairedSeries("b", "p50", base, one_down),
        P.PairedSeries("c", "p50", base, mixed),
        P.PairedSeries("d", "requests", base, all_up, gated=False),
    ]
    r = P.compare_paired(series, FAST).results
    assert [x.p_value for x in r[:2]] == pytest.approx([2 / 1024, 4 / 1024])
    assert r[2].p_value > 0.9
    # BH, m = 3: sorted p1 x 3/1 = 6/1024, p2 x 3/2 = 6/1024, p3 x 3/3 = p3; then running minimum from the top
    assert [x.p_adjusted for x in r[:3]] == pytest.approx([6 / 1024, 6 / 1024, r[2].p_value])
    assert r[3].p_adjusted == r[3].p_value == pytest.approx(2 / 1024)  # informational: outside the family


def test_bootstrap_is_deterministic_under_a_seed() -> None:
    rng = np.random.default_rng(9)
    d = P.log_ratios(*_pairs(rng, effect=1.03, run_sd=0.02))
    first = P.bootstrap_effect_ci(d, resamples=2000, seed=11)
    assert first == P.bootstrap_effect_ci(d, resamples=2000, seed=11)
    assert len({P.bootstrap_effect_ci(d, resamples=2000, seed=s) for s in range(5)}) > 1  # the seed is used
    assert first[0] < P.hodges_lehmann(d) < first[1]
    series = [P.PairedSeries(ENDPOINT, "p50", *_pairs(rng))]
    assert P.compare_paired(series).to_dict() == P.compare_paired(series).to_dict()  # default 10,000 resamples


def test_hodges_lehmann_by_hand() -> None:
    # Walsh averages of (0, 1, 5): 0, 0.5, 2.5, 1, 3, 5 -> median (1 + 2.5) / 2
    assert P.hodges_lehmann(np.array([0.0, 1.0, 5.0])) == 1.75
    assert P.hodges_lehmann(np.array([[0.0, 1.0, 5.0], [1.0, 1.0, 1.0]])).tolist() == [1.75, 1.0]


def test_non_positive_values_are_refused_naming_the_metric() -> None:
    with pytest.raises(ValueError, match=r"service_cpu_ms_per_request: candidate value 0\.0 in pair 1"):
        P.log_ratios([1.0, 1.0], [1.0, 0.0], "service_cpu_ms_per_request")
    with pytest.raises(ValueError, match=r"p99: baseline value -1\.0 in pair 0"):
        P.compare_paired([P.PairedSeries(ENDPOINT, "p99", [-1.0, 2.0], [1.0, 2.0])])
    with pytest.raises(ValueError, match="p99: baseline value nan"):
        P.compare_paired([P.tail_series(ENDPOINT, "p99", [math.nan, 2.0], [1.0, 2.0])])
    with pytest.raises(ValueError, match="rss: baseline and candidate need one value per pair"):
        P.log_ratios([1.0, 2.0], [1.0], "rss")
    # the floor convention: values under the metric's floor count as the floor, so 0 vs 0.0004 is no ratio at all
    assert P.log_ratios([0.0, 0.01], [0.0004, 0.01], "failure_ratio", floor=0.001).tolist() == [0.0, 0.0]


def test_minimum_detectable_effect_by_hand() -> None:
    d = np.array([0.01, -0.01] * 5)  # sd (ddof 1) = 0.01 x sqrt(10 / 9) = 0.0105409
    # (1.959964 + 0.841621) x 0.0105409 / sqrt(10) = 0.00933848 -> 100 x (e^0.00933848 - 1) = 0.93822%
    assert P.minimum_detectable_effect(d) == pytest.approx(0.93822, rel=1e-4)
    assert P.minimum_detectable_effect(d, pairs=40) == pytest.approx(100 * math.expm1(0.00933848 / 2), rel=1e-4)
    assert P.minimum_detectable_effect(d, pairs=5) == math.inf  # 2 / 2^5 = 0.0625 >= 0.05
    assert P.minimum_detectable_effect(d[:1]) == math.inf


def test_tail_percentiles_are_per_run_values_compared_pair_by_pair() -> None:
    rng = np.random.default_rng(10)
    base, cand = _pairs(rng, effect=1.10, run_sd=0.03, drift=0.2)
    series = P.tail_series(ENDPOINT, "p99", base * 5, cand * 5)
    assert series.higher_is_worse and series.floor == 0.2 and series.unit == "ms"
    assert P.compare_paired([series], FAST).results[0].verdict == "regression"


def test_lines_json_and_exit_codes_match_the_gate() -> None:
    assert (P.EXIT_NO_REGRESSION, P.EXIT_REGRESSION, P.EXIT_INCONCLUSIVE) == (
        compare.EXIT_NO_REGRESSION,
        compare.EXIT_REGRESSION,
        compare.EXIT_INCONCLUSIVE,
    )
    rng = np.random.default_rng(11)
    series = [
        P.PairedSeries(ENDPOINT, "p50", *_pairs(rng, effect=1.034), unit="ms", floor=0.2),
        P.PairedSeries("", "service_peak_rss_mb", *_pairs(rng), unit="MB", floor=5.0),
        P.PairedSeries(ENDPOINT, "requests", *_pairs(rng), gated=False),
    ]
    comparison = P.compare_paired(series, FAST)
    line = comparison.results[0].line()
    assert re.fullmatch(
        re.escape(ENDPOINT) + r" p50: \+\d\.\d% \[\+\d\.\d%, \+\d\.\d%\] \(p_adj=0\.\d+, 10 pairs\): regression", line
    ), line
    assert comparison.results[1].line().startswith("service service_peak_rss_mb: ")
    assert comparison.results[2].line().endswith("(informational)")
    assert comparison.exit_code == P.EXIT_REGRESSION and comparison.verdict == "regression"
    data = json.loads(json.dumps(comparison.to_dict(), allow_nan=False))
    assert data["exit_code"] == 4 and data["metrics"][0]["line"] == line
    assert data["metrics"][0]["ci_percent"] == list(comparison.results[0].ci_percent)
    assert P.exit_code(comparison.results[1:]) == P.EXIT_NO_REGRESSION
    unreachable = P.compare_paired([P.PairedSeries(ENDPOINT, "p50", [1.0, 2.0], [2.0, 3.0])], FAST)
    assert json.dumps(unreachable.to_dict(), allow_nan=False)  # inf MDE and NaN-free JSON


def test_a_slowdown_the_pairs_cannot_confirm_is_never_a_pass() -> None:
    """8 pairs, one of 20 gated metrics 3x slower in every pair: after BH (2/2^8 x 20 = 0.16) it cannot be
    significant, so it is inconclusive, and the exit code says so (5) instead of "no regression" (0)."""
    rng = np.random.default_rng(15)
    flat = [P.PairedSeries(ENDPOINT, f"m{i}", *_pairs(rng, 8)) for i in range(19)]
    slow = P.PairedSeries(ENDPOINT, "p50", *_pairs(rng, 8, effect=3.0))
    comparison = P.compare_paired([slow, *flat], FAST)
    (result,) = [r for r in comparison.results if r.metric == "p50"]
    assert result.verdict == "inconclusive" and result.effect_percent > 150, result.line()
    assert P.suspected_regressions(comparison.results) == [result]
    assert comparison.exit_code == P.EXIT_INCONCLUSIVE
    allowed = P.PairedOptions(resamples=1000, allow_inconclusive=True)
    assert P.compare_paired([slow, *flat], allowed).exit_code == P.EXIT_NO_REGRESSION
    assert P.exit_code([r for r in comparison.results if r.metric != "p50"]) == P.EXIT_NO_REGRESSION


def test_a_metric_with_its_own_noise_floor_is_judged_by_it() -> None:
    """A level such as RSS differs by a few percent between two instances of one build: a steady +2.8% is
    significant, a regression under the options' 1% floor, and no change under its own 5%."""
    baseline = [100.0, 101.0, 99.0, 100.5, 100.0, 99.5, 100.2, 100.8, 99.9, 100.1]
    candidate = [b * 1.028 for b in baseline]
    plain = P.compare_paired([P.PairedSeries("service", "rss_mb", baseline, candidate)])
    floored = P.compare_paired([P.PairedSeries("service", "rss_mb", baseline, candidate, noise_floor_percent=5.0)])
    assert plain.results[0].verdict == "regression" and plain.exit_code == 4
    assert floored.results[0].verdict == "no change" and floored.exit_code == 0
    assert floored.results[0].noise_floor_percent == 5.0


def test_a_tail_that_strays_past_the_threshold_within_its_mde_does_not_hold_the_gate() -> None:
    """An A/A's p99 with an MDE of about 6% lands at +4% now and then: inconclusive, but not a suspected regression
    (exit 0); the same spread around +30% is one (exit 5)."""
    wander = [11.2, 9.6, 11.0, 9.9, 10.9, 9.5, 11.2, 9.8, 10.6, 10.4]
    comparison = P.compare_paired([P.PairedSeries("GET /x", "p99", [10.0] * 10, wander)])
    (result,) = comparison.results
    assert result.verdict == "inconclusive" and 3.0 < result.effect_percent < result.mde_percent
    assert P.suspected_regressions(comparison.results) == [] and comparison.exit_code == 0
    far = [13.0, 16.0, 12.5, 14.0, 17.0, 10.5, 13.5, 11.0, 12.0, 14.5]  # about +30%, spread wide
    noisy = P.compare_paired([P.PairedSeries("GET /x", "p99", [10.0] * 10, far), *(
        P.PairedSeries(f"GET /{i}", "p50", [10.0] * 10, [10.0] * 10) for i in range(30))])  # fmt: skip
    (far_result,) = [r for r in noisy.results if r.endpoint == "GET /x"]
    # BH over 31 metrics keeps it from significance (p adj 0.06), yet it is beyond what the pairs could detect
    assert far_result.verdict == "inconclusive" and far_result.p_adjusted > 0.05
    assert far_result.effect_percent > far_result.mde_percent and noisy.exit_code == 5


def test_a_metric_too_few_pairs_could_judge_is_no_suspect() -> None:
    """A tail percentile with values in 4 pairs of 10 (too few requests above it in the other runs) cannot reach
    significance at any effect: its +14% is no suspected regression, while the comparison's other metrics decide."""
    baseline, candidate = [10.0, 12.0, 9.0, 11.0], [11.5, 13.4, 10.4, 12.6]
    sparse = P.PairedSeries("POST /batch", "p99", baseline, candidate)
    steady = [P.PairedSeries(f"GET /{i}", "p50", [10.0] * 10, [10.0] * 10) for i in range(3)]
    comparison = P.compare_paired([sparse, *steady])
    (result,) = [r for r in comparison.results if r.metric == "p99"]
    assert result.verdict == "inconclusive" and result.effect_percent > 10 and not math.isfinite(result.mde_percent)
    assert P.suspected_regressions(comparison.results) == [] and comparison.exit_code == 0
