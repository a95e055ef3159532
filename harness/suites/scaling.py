"""Fits for scalability results: the growth exponent of a cost against a size, and the Universal Scalability Law.

Growth: ``cost = a * size ** b`` fitted on log-log axes (``scipy.stats.linregress``); the exponent ``b`` comes
with a two-sided confidence interval from its standard error and Student's t on ``n - 2`` degrees of freedom.
Small sizes are dominated by fixed costs (a call, an fsync, a Python loop's start), so the exponent that says
how a cost grows is fitted on the upper part of the size range (``tail`` points), and the whole range is fitted
too for reference. Growth is *super-linear* when the interval's lower bound is above ``1 + tolerance``.

USL (Gunther): ``X(N) = lam * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))`` with ``X`` the throughput at
concurrency ``N``, ``sigma`` the contention (serialized share) and ``kappa`` the coherency cost (crosstalk).
The peak is at ``N* = sqrt((1 - sigma) / kappa)`` (none when ``kappa`` is 0: throughput levels off instead).
A fit is trusted only when its R^2 over the measured points is at least ``min_r_squared``; otherwise
``UslFit.fits`` is False and ``UslFit.note`` says so: a step curve that is noise or still linear is not USL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

__all__ = ["GrowthFit", "UslFit", "fit_growth", "fit_usl", "knee", "usl_throughput"]

LINEAR_TOLERANCE = 0.05  # an exponent up to 1.05 counts as linear


@dataclass(frozen=True)
class GrowthFit:
    """``cost ~ size ** exponent`` over ``points`` sizes; ``ci_low``/``ci_high`` bound the exponent at
    ``confidence``; ``overall_exponent`` is the fit over every size (fixed costs pull it below 1)."""

    exponent: float
    ci_low: float
    ci_high: float
    r_squared: float
    points: int
    confidence: float
    min_size: float
    max_size: float
    overall_exponent: float

    @property
    def verdict(self) -> str:
        """'super-linear' (lower bound above 1.05), 'linear' or 'sub-linear' (upper bound below 0.95)."""
        if self.ci_low > 1.0 + LINEAR_TOLERANCE:
            return "super-linear"
        if self.ci_high < 1.0 - LINEAR_TOLERANCE:
            return "sub-linear"
        return "linear"

    @property
    def superlinear(self) -> bool:
        return self.verdict == "super-linear"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}

    def line(self) -> str:
        """One line for a log: the exponent, its interval and what it means."""
        return (
            f"exponent {self.exponent:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] ({self.confidence:.0%} CI, "
            f"sizes {self.min_size:g}..{self.max_size:g}, R^2 {self.r_squared:.3f}): {self.verdict}; "
            f"over the whole range {self.overall_exponent:.3f}"
        )


def _slope(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, float, float]:
    fit = stats.linregress(np.log(x), np.log(y))
    if len(x) < 3:
        return float(fit.slope), float("nan"), float(fit.rvalue**2)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 2) * fit.stderr)
    return float(fit.slope), half, float(fit.rvalue**2)


def fit_growth(
    sizes: Sequence[float], costs: Sequence[float], *, tail: int | None = None, confidence: float = 0.95
) -> GrowthFit:
    """Fit ``costs ~ sizes ** b`` on the ``tail`` largest sizes (default: the upper half, at least 3 points).

    Costs are seconds or bytes (any positive unit). Raises ValueError with fewer than 2 positive points.
    """
    pairs = sorted((float(s), float(c)) for s, c in zip(sizes, costs, strict=True) if s > 0 and c > 0)
    if len(pairs) < 2:
        raise ValueError(f"a growth fit needs at least 2 positive (size, cost) points, got {len(pairs)}")
    x_all, y_all = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    keep = tail if tail is not None else max(3, math.ceil(len(pairs) / 2))
    x, y = x_all[-min(keep, len(pairs)) :], y_all[-min(keep, len(pairs)) :]
    slope, half, r2 = _slope(x, y, confidence)
    overall = float(stats.linregress(np.log(x_all), np.log(y_all)).slope)
    return GrowthFit(slope, slope - half, slope + half, r2, len(x), confidence, float(x[0]), float(x[-1]), overall)


def usl_throughput(n: np.ndarray | float, lam: float, sigma: float, kappa: float) -> np.ndarray | float:
    """The USL's throughput at concurrency ``n`` (same unit as ``lam``, e.g. requests per second)."""
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


@dataclass(frozen=True)
class UslFit:
    """A USL fit: ``lam`` (throughput of one user, req/s), ``sigma``, ``kappa``; the predicted peak (None when
    throughput never falls); R^2 over the measured points, and whether the model is trusted (``fits``)."""

    lam: float
    sigma: float
    kappa: float
    r_squared: float
    points: int
    peak_users: float | None
    peak_rps: float | None
    fits: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        peak = (
            f"peak {self.peak_rps:,.0f} req/s at {self.peak_users:,.0f} users"
            if self.peak_users is not None and self.peak_rps is not None
            else "no peak (kappa 0: throughput levels off)"
        )
        return (
            f"USL sigma {self.sigma:.4f}, kappa {self.kappa:.2e}, lambda {self.lam:,.1f} req/s per user, {peak}, "
            f"R^2 {self.r_squared:.3f} over {self.points} steps" + ("" if self.fits else f": {self.note}")
        )


def fit_usl(users: Sequence[float], rps: Sequence[float], *, min_r_squared: float = 0.9) -> UslFit:
    """Fit the USL to measured (users, throughput) steps with bounded least squares (``curve_fit``,
    ``lam > 0``, ``0 <= sigma <= 1``, ``0 <= kappa <= 1``). Raises ValueError with fewer than 4 steps (three
    parameters need a point to spare)."""
    n, x = np.asarray(users, dtype=float), np.asarray(rps, dtype=float)
    if len(n) < 4:
        raise ValueError(f"a USL fit needs at least 4 steps, got {len(n)}")
    order = np.argsort(n)
    n, x = n[order], x[order]
    lam0 = max(float(x[0] / n[0]), 1e-9)
    (lam, sigma, kappa), _ = optimize.curve_fit(
        usl_throughput, n, x, p0=(lam0, 0.05, 1e-4), bounds=([1e-12, 0.0, 0.0], [np.inf, 1.0, 1.0]), maxfev=20_000
    )
    predicted = usl_throughput(n, lam, sigma, kappa)
    total = float(np.sum((x - x.mean()) ** 2))
    r2 = 1.0 - float(np.sum((x - predicted) ** 2)) / total if total > 0 else 0.0
    peak_users = peak_rps = None
    if kappa > 1e-12 and sigma < 1.0:
        peak_users = math.sqrt((1.0 - sigma) / kappa)
        peak_rps = float(usl_throughput(peak_users, lam, sigma, kappa))
    fits = r2 >= min_r_squared
    note = "" if fits else f"the USL does not fit these steps (R^2 {r2:.2f} < {min_r_squared}): read the points"
    if fits and peak_users is not None and peak_users > 4 * n[-1]:
        note = f"the predicted peak lies far beyond the largest step measured ({n[-1]:g} users): an extrapolation"
    return UslFit(float(lam), float(sigma), float(kappa), r2, len(n), peak_users, peak_rps, fits, note)


def knee(users: Sequence[float], p95_ms: Sequence[float | None], slo_p95_ms: float) -> float | None:
    """The highest user count whose p95 is within the SLO, below the first step that breaks it (None: none is)."""
    best = None
    for u, p in sorted(zip(users, p95_ms, strict=True)):
        if p is None or p > slo_p95_ms:
            break
        best = u
    return best
