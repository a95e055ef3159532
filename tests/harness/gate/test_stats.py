"""The gate's statistics on synthetic data with known answers (harness.gate.stats, harness.gate.compare.classify).

The simulations are seeded and vectorized (thousands of comparisons in well under a second). Their noise model is a
run-level metric (say a p50 of 8 ms) with lognormal run-to-run noise of 4% and, in 5% of runs, a noisy neighbour
that makes the run 30% slower: the shape of the spread campaigns of 30-60 s runs show on a shared VM.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.gate import stats
from harness.gate.compare import classify

K = 1000  # simulated comparisons
N = 10  # runs per side
BASE_MS = 8.0


def _runs(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    noise = np.exp(rng.normal(0.0, 0.04, shape))
    neighbour = np.where(rng.random(shape) < 0.05, 1.3, 1.0)
    return BASE_MS * scale * noise * neighbour


def _verdicts(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    ma, mb = np.median(a, axis=-1), np.median(b, axis=-1)
    threshold = np.maximum(0.05 * ma, 0.2)
    everywhere = np.ones(ma.shape, dtype=bool)
    return classify(p, ma, mb, everywhere, threshold, everywhere)


def test_same_distribution_gives_at_most_5_percent_false_positives() -> None:
    rng = np.random.default_rng(20260101)
    a, b = _runs(rng, (K, N)), _runs(rng, (K, N))
    p = stats.mann_whitney_p(a, b)
    verdicts = _verdicts(a, b, p)
    false_positive = np.mean((verdicts == "regression") | (verdicts == "improvement"))
    assert false_positive <= 0.05, false_positive
    assert np.mean(p < 0.05) <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / K)  # the test itself holds its level


def test_a_10_percent_slower_median_is_detected_at_least_90_percent_of_the_time_with_10_runs() -> None:
    rng = np.random.default_rng(20260102)
    a, b = _runs(rng, (K, N)), _runs(rng, (K, N), scale=1.10)
    verdicts = _verdicts(a, b, stats.mann_whitney_p(a, b))
    assert np.mean(verdicts == "regression") >= 0.90
    assert not np.any(verdicts == "improvement")


def test_a_10_percent_faster_median_is_an_improvement_not_a_regression() -> None:
    rng = np.random.default_rng(20260103)
    a, b = _runs(rng, (K, N)), _runs(rng, (K, N), scale=0.90)
    verdicts = _verdicts(a, b, stats.mann_whitney_p(a, b))
    assert np.mean(verdicts == "improvement") >= 0.90
    assert not np.any(verdicts == "regression")


def test_direction_lower_is_worse_for_throughput() -> None:
    verdicts = classify(np.array([0.001, 0.001]), np.array([100.0, 100.0]), np.array([80.0, 120.0]),
                        np.array([False, False]), np.array([5.0, 5.0]), np.array([True, True]))  # fmt: skip
    assert verdicts.tolist() == ["regression", "improvement"]


def test_significant_but_small_is_no_change_and_unpowered_is_inconclusive() -> None:
    verdicts = classify(np.array([0.001, 0.5, 0.5]), np.array([10.0, 10.0, 10.0]), np.array([10.2, 12.0, 12.0]),
                        np.array([True] * 3), np.array([0.5] * 3), np.array([True, True, False]))  # fmt: skip
    assert verdicts.tolist() == ["no change", "no change", "inconclusive"]


def test_a_whole_a_a_comparison_of_20_metrics_stays_under_5_percent_after_the_correction() -> None:
    rng = np.random.default_rng(20260104)
    campaigns, metrics = 300, 20
    a, b = _runs(rng, (campaigns, metrics, N)), _runs(rng, (campaigns, metrics, N))
    p = stats.mann_whitney_p(a.reshape(-1, N), b.reshape(-1, N)).reshape(campaigns, metrics)
    for correct in (stats.benjamini_hochberg, stats.holm):
        adjusted = np.vstack([correct(row) for row in p])
        verdicts = _verdicts(a, b, adjusted)
        any_false = np.mean(np.any((verdicts == "regression") | (verdicts == "improvement"), axis=1))
        assert any_false <= 0.05, (correct.__name__, any_false)


def test_holm_and_benjamini_hochberg_on_a_textbook_example() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    assert stats.holm([]).size == 0


def test_mann_whitney_of_identical_constant_samples_is_one_not_nan() -> None:
    assert stats.mann_whitney_p(np.zeros(5), np.zeros(5)) == 1.0
    assert stats.mann_whitney_p(np.zeros((2, 5)), np.zeros((2, 5))).tolist() == [1.0, 1.0]
    assert stats.mann_whitney_p(np.arange(5.0), np.arange(5.0) + 10) == pytest.approx(2 / math.comb(10, 5))


def test_bootstrap_interval_of_the_ratio_of_medians() -> None:
    rng = np.random.default_rng(5)
    a = rng.lognormal(np.log(10.0), 0.03, 40)
    low, high = stats.bootstrap_ratio_ci(a, a * 1.2, seed=1)
    assert low < 1.2 < high and low > 1.1
    low, high = stats.bootstrap_ratio_ci(a, rng.lognormal(np.log(10.0), 0.03, 40), seed=1)
    assert low < 1.0 < high
    assert stats.bootstrap_ratio_ci(a, a, seed=3) == stats.bootstrap_ratio_ci(a, a, seed=3)  # seeded
    assert all(math.isnan(x) for x in stats.bootstrap_ratio_ci(np.empty(0), a))


def test_power_formulas_agree_with_each_other_and_with_the_exact_tests_floor() -> None:
    assert stats.min_runs_for_alpha(0.05) == 4  # 2/C(6,3) = 0.1 is not < 0.05, 2/C(8,4) = 0.029 is
    assert stats.min_runs_for_alpha(0.05 / 20) == 6  # 2/C(12,6) = 0.0022
    effect = stats.min_detectable_effect(sd=1.0, runs=10)
    assert stats.runs_needed(sd=1.0, effect=effect) == 10
    assert stats.min_detectable_effect(sd=1.0, runs=3) == math.inf
    assert stats.runs_needed(sd=1.0, effect=0.0) is None
    assert stats.runs_needed(sd=0.0, effect=1.0) == 4  # no noise: the exact test's own floor
    assert stats.robust_sd(np.array([1.0, 1.0, 1.0, 1.0, 100.0])) > 0  # MAD 0 falls back to the SD


def test_change_points_find_the_one_step_of_a_history() -> None:
    rng = np.random.default_rng(11)
    history = np.r_[rng.normal(10.0, 0.3, 20), rng.normal(11.5, 0.3, 15)]
    found = stats.change_points(history)
    assert len(found) == 1 and abs(found[0] - 20) <= 1


def test_change_points_find_nothing_in_flat_histories_and_both_steps_of_a_staircase() -> None:
    flat_hits = sum(bool(stats.change_points(np.random.default_rng(s).normal(10, 1, 30), alpha=0.01))
                    for s in range(20))  # fmt: skip
    assert flat_hits <= 1
    rng = np.random.default_rng(12)
    stairs = np.r_[rng.normal(10, 0.2, 12), rng.normal(12, 0.2, 12), rng.normal(9, 0.2, 12)]
    assert [round(i / 12) for i in stats.change_points(stairs)] == [1, 2]
    assert stats.change_points([1.0, 2.0]) == []
    with_outlier = np.r_[np.full(10, 5.0), 50.0, np.full(10, 5.0)] + np.random.default_rng(1).normal(0, 0.1, 21)
    assert stats.change_points(with_outlier, alpha=0.01) == []  # one wild save is not a step


def test_the_smallest_p_value_a_few_runs_can_give_and_the_runs_to_reach_alpha_after_correction() -> None:
    assert stats.min_p_value(3, 3) == pytest.approx(0.1)  # 2 / C(6, 3): why --repeat 3 can never be significant
    assert stats.min_p_value(4, 4) == pytest.approx(2 / 70) and stats.min_p_value(0, 5) == 1.0
    assert stats.min_runs_to_reach(0.05) == 4  # Benjamini-Hochberg: the smallest adjusted p is the smallest p
    assert stats.min_runs_to_reach(0.05, family=20, correction="holm") == 6  # 20 x 2 / C(12, 6) = 0.043
