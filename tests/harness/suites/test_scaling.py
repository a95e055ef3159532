"""harness.suites.scaling: the growth exponent and its interval, the USL fit, its peak and R^2, and the knee."""

from __future__ import annotations

import numpy as np
import pytest

from harness.suites.scaling import fit_growth, fit_usl, knee, usl_throughput


def test_growth_exponent_recovers_linear_and_quadratic_costs_with_an_interval() -> None:
    sizes = np.array([1e2, 1e3, 1e4, 1e5, 1e6])
    noise = np.array([1.02, 0.98, 1.01, 0.99, 1.0])
    linear = fit_growth(sizes, 3e-7 * sizes * noise)
    assert linear.exponent == pytest.approx(1.0, abs=0.03)
    assert linear.ci_low < linear.exponent < linear.ci_high
    assert linear.verdict == "linear" and not linear.superlinear
    quadratic = fit_growth(sizes, 1e-9 * sizes**2 * noise)
    assert quadratic.verdict == "super-linear" and quadratic.exponent == pytest.approx(2.0, abs=0.05)


def test_growth_is_fitted_on_the_upper_sizes_where_fixed_costs_no_longer_dominate() -> None:
    sizes = np.array([1e2, 1e3, 1e4, 1e5, 1e6])
    fit = fit_growth(sizes, 5e-3 + 1e-6 * sizes)  # 5 ms fixed cost, then 1 us per row
    assert fit.overall_exponent < 0.6 < fit.exponent
    assert fit.points == 3 and fit.min_size == 1e4


def test_usl_fit_recovers_sigma_kappa_and_the_peak() -> None:
    users = np.array([1, 2, 4, 8, 16, 32, 64, 128])
    rps = usl_throughput(users, 100.0, 0.03, 0.0005)
    fit = fit_usl(users, rps)
    assert fit.fits and fit.r_squared > 0.999
    assert fit.sigma == pytest.approx(0.03, rel=0.05) and fit.kappa == pytest.approx(0.0005, rel=0.05)
    assert fit.peak_users == pytest.approx(np.sqrt(0.97 / 0.0005), rel=0.05)


def test_usl_says_when_it_does_not_fit() -> None:
    fit = fit_usl([1, 2, 4, 8, 16], [100, 20, 300, 15, 250])
    assert not fit.fits and "does not fit" in fit.note
    with pytest.raises(ValueError, match="at least 4"):
        fit_usl([1, 2, 3], [1, 2, 3])


def test_knee_is_the_highest_step_within_the_slo() -> None:
    assert knee([1, 10, 50, 100], [3.0, 8.0, 40.0, 120.0], 50.0) == 50
    assert knee([1, 10], [60.0, 80.0], 50.0) is None
