"""The regression gate: ``python -m harness compare BASELINE CANDIDATE`` answers "did this build get slower?".

Each side is a campaign directory, a baseline name (``baselines/<name>``) or, both sides alike, a single run
directory. For every endpoint and metric (``harness.gate.metrics_table.METRICS``) the gate:

1. tests baseline against candidate with Mann-Whitney U, two-sided, over the per-run values (single runs: over
   the per-request latencies of each endpoint, one test per endpoint);
2. corrects the p-values over the family of gated metrics actually tested (Benjamini-Hochberg by default, Holm
   with ``--correction holm``);
3. measures the effect as the ratio of medians candidate / baseline with a bootstrap 95% confidence interval, and
   calls it practical when the change is at least ``--min-effect`` (default 5%) of the baseline and at least the
   metric's absolute floor (0.2 ms for latencies);
4. gives one verdict: **regression** or **improvement** (significant and practical, by the metric's direction:
   higher is worse for latency, failure ratio, CPU per request and RSS; lower is worse for throughput),
   **no change** (significant but below the practical threshold, or not significant with enough runs to have seen
   a practical change), or **inconclusive** (too noisy or too few runs; ``runs_needed`` says how many would do).

Before any verdict, the gate asks whether the comparison *can* find anything: the exact Mann-Whitney test with
``n_a`` and ``n_b`` runs never gives p below 2 / C(n_a + n_b, n_a) (3 vs 3: 0.1), and after the correction that
floor must still be under alpha. When it is not, the whole comparison is **inconclusive** ("3 runs per side cannot
reach significance; use --repeat >= 4"), whatever the medians did, and exits 5 unless ``allow_inconclusive``.

Exit codes: 0 no regression (``EXIT_NO_REGRESSION``), 4 regression in a gated metric (``EXIT_REGRESSION``), 5 the
comparison cannot reach significance (``EXIT_INCONCLUSIVE``; 0 with ``--allow-inconclusive``, still flagged), 2 bad
input (distinct from 3, a threshold breach of a single run). Informational metrics (request counts, generator CPU,
the Aggregated rows) are shown and tested but never gate. Results come largest change first among the gated metrics
(regressions and improvements before them), so a huge effect shows first even when nothing could be flagged.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.gate import stats
from harness.gate.campaign_data import CampaignData, load_campaign
from harness.gate.fingerprint import machine_differences, machine_key, software_differences
from harness.gate.metrics_table import (
    AGGREGATED,
    METRICS,
    PERCENTILES,
    BadInputError,
    MetricSpec,
    extract_run_metrics,
    request_latencies,
)
from harness.target.faults import describe_faults, faults_from_metadata

__all__ = [
    "EXIT_INCONCLUSIVE",
    "EXIT_NO_REGRESSION",
    "EXIT_REGRESSION",
    "Comparison",
    "GateOptions",
    "MetricResult",
    "Side",
    "classify",
    "compare_sides",
    "load_side",
]

EXIT_NO_REGRESSION = 0
EXIT_REGRESSION = 4
EXIT_INCONCLUSIVE = 5
VERDICTS = ("regression", "improvement", "no change", "inconclusive")
ONE_RUN_WARNING = (
    "one run per side: the tests compare per-request latencies of two runs, which cannot separate the build from "
    "this machine's run-to-run noise; use campaigns (python -m harness campaign --repeat 10) for a decision"
)


@dataclass(frozen=True)
class GateOptions:
    """The gate's parameters: significance level, correction, minimum practical effect, power for runs_needed."""

    alpha: float = 0.05
    correction: str = "bh"  # or "holm"
    min_effect: float = 0.05  # relative to the baseline's median
    power: float = 0.8
    allow_different_machine: bool = False
    allow_inconclusive: bool = False  # exit 0 (still flagged) when the runs cannot reach significance
    warmup_s: float = 0.0  # single runs only: campaigns dropped their warm-up when they were run


@dataclass
class Side:
    """One side of a comparison: a campaign (or baseline, same files) or a single run."""

    label: str
    kind: str  # "campaign", "baseline" or "run"
    path: Path
    scenario: dict[str, Any]
    fingerprint: dict[str, Any] | None
    faults: dict[str, Any]
    campaign: CampaignData | None = None
    latencies: dict[str, np.ndarray] | None = None
    run_values: dict[tuple[str, str], float] = field(default_factory=dict)

    def values(self) -> dict[tuple[str, str], np.ndarray]:
        """Per (endpoint, metric): the per-run values (NaN where a run could not measure it)."""
        if self.campaign is None:
            return {key: np.asarray([value]) for key, value in self.run_values.items()}
        table = self.campaign.metrics
        endpoints = table.column("endpoint").to_pylist()
        metrics = table.column("metric").to_pylist()
        numbers = table.column("value").to_numpy(zero_copy_only=False).astype(float)
        grouped: dict[tuple[str, str], list[float]] = {}
        for endpoint, metric, value in zip(endpoints, metrics, numbers, strict=True):
            grouped.setdefault((endpoint, metric), []).append(value)
        return {key: np.asarray(values) for key, values in grouped.items()}

    @property
    def runs(self) -> int:
        if self.campaign is None:
            return 1
        return len(set(self.campaign.metrics.column("run").to_pylist()))


@dataclass
class MetricResult:
    """One metric of one endpoint, compared."""

    endpoint: str
    metric: str
    unit: str
    higher_is_worse: bool
    gated: bool
    baseline_values: list[float]
    candidate_values: list[float]
    baseline_median: float = math.nan
    candidate_median: float = math.nan
    change_percent: float = math.nan
    ratio_ci: tuple[float, float] = (math.nan, math.nan)
    threshold: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    verdict: str = "inconclusive"
    reason: str = ""
    runs_needed: int | None = None


@dataclass
class Comparison:
    """Everything the gate found; ``exit_code`` is 4 when a gated metric regressed."""

    baseline: Side
    candidate: Side
    options: GateOptions
    results: list[MetricResult]
    warnings: list[str]
    unreachable: str | None = None  # why no gated metric can reach significance with these runs (None: it can)
    runs_to_reach: int | None = None  # the fewest runs per side with which it could

    @property
    def regressions(self) -> list[MetricResult]:
        return [r for r in self.results if r.gated and r.verdict == "regression"]

    @property
    def verdict(self) -> str:
        """The overall verdict: regression, inconclusive (the runs cannot reach significance) or no regression."""
        if self.regressions:
            return "regression"
        return "inconclusive" if self.unreachable else "no regression"

    @property
    def exit_code(self) -> int:
        if self.regressions:
            return EXIT_REGRESSION
        if self.unreachable and not self.options.allow_inconclusive:
            return EXIT_INCONCLUSIVE
        return EXIT_NO_REGRESSION

    def counts(self) -> dict[str, int]:
        gated = [r for r in self.results if r.gated]
        return {verdict: sum(r.verdict == verdict for r in gated) for verdict in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        def side(s: Side) -> dict[str, Any]:
            key = (s.fingerprint or {}).get("key")
            return {
                "label": s.label,
                "kind": s.kind,
                "path": str(s.path),
                "runs": s.runs,
                "scenario": s.scenario,
                "fingerprint_key": key,
                "faults": s.faults,
                "faults_banner": describe_faults(s.faults),
            }

        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "inconclusive_reason": self.unreachable,
            "runs_to_reach_significance": self.runs_to_reach,
            "counts": self.counts(),
            "baseline": side(self.baseline),
            "candidate": side(self.candidate),
            "method": method_text(self.options, single_runs=self.baseline.kind == "run"),
            "options": asdict(self.options),
            "warnings": self.warnings,
            "metrics": [asdict(r) for r in self.results],
        }


def method_text(options: GateOptions, single_runs: bool = False) -> dict[str, str]:
    """How every figure of a comparison was computed, for the reports."""
    correction = "Benjamini-Hochberg (false discovery rate)" if options.correction == "bh" else "Holm (family-wise)"
    return {
        "test": "Mann-Whitney U, two-sided, "
        + ("per endpoint over per-request latencies" if single_runs else "over per-run values"),
        "correction": f"{correction} over the gated metrics tested, alpha {options.alpha:g}",
        "effect": "ratio of medians candidate/baseline (single runs: of the percentile itself), bootstrap 95% CI",
        "practical": f"a change of at least {options.min_effect:.0%} of the baseline and the metric's floor "
        "(latency 0.2 ms, throughput 0.5 req/s, failure ratio 0.001, CPU 0.01 ms/request, RSS 5 MB)",
        "percentiles": "exact nearest rank over every request in the measured window (warm-up dropped)",
        "runs_needed": f"normal approximation / Mann-Whitney efficiency 3/pi, power {options.power:.0%}, "
        "alpha divided by the number of gated tests (worst case of the correction)",
    }


# ---- loading ----------------------------------------------------------------------------------------------------


def load_side(spec: str, baselines_dir: Path, warmup_s: float = 0.0) -> Side:
    """A campaign directory, a baseline directory or name, or a run directory. Raises BadInputError otherwise."""
    path = Path(spec)
    if not path.is_dir() and (baselines_dir / spec).is_dir() and "/" not in spec:
        path = baselines_dir / spec
    if not path.is_dir():
        known = sorted(p.name for p in baselines_dir.iterdir() if p.is_dir()) if baselines_dir.is_dir() else []
        raise BadInputError(
            f"{spec!r} is neither a campaign or run directory nor a baseline in {baselines_dir}/ "
            f"(baselines: {', '.join(known) or 'none'})"
        )
    if (path / "campaign.json").is_file():
        data = load_campaign(path)
        kind = "baseline" if (path / "baseline.json").is_file() else "campaign"
        return Side(
            label=path.name,
            kind=kind,
            path=path,
            scenario=_campaign_scenario(data.info),
            fingerprint=data.info.get("fingerprint"),
            faults=data.info.get("faults") or {},
            campaign=data,
        )
    if (path / "requests.arrows").is_file() or (path / "metadata.json").is_file():
        return _load_run(path, warmup_s)
    raise BadInputError(f"{path} holds no campaign.json and no requests.arrows: not a campaign, baseline or run")


def _campaign_scenario(info: Mapping[str, Any]) -> dict[str, Any]:
    scenario = {k: v for k, v in dict(info.get("scenario") or {}).items() if k != "host"}
    scenario["warmup_s"] = info.get("warmup_s")
    return scenario


def _load_run(path: Path, warmup_s: float) -> Side:
    latencies, _ = request_latencies(path, warmup_s)
    metadata = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    run = extract_run_metrics(path, warmup_s)
    options = metadata.get("options") or {}
    env = metadata.get("environment") or {}
    scenario = {
        "locustfile": Path(str(metadata.get("locustfile") or "")).name,
        "users": options.get("users"),
        "spawn_rate": options.get("spawn_rate"),
        "run_time_s": options.get("run_time_s"),
        "profile": (metadata.get("profile") or {}).get("name"),
        "warmup_s": warmup_s,
    }
    machine = {
        "cpu_model": env.get("cpu_model"),
        "cpu_count_logical": env.get("cpu_count_logical"),
        "cpu_count_physical": env.get("cpu_count_physical"),
        "memory_gib": round((env.get("memory_total_bytes") or 0) / 2**30),
    }
    fingerprint = {
        "key": machine_key(machine),
        "machine": machine,
        "software": {"python": env.get("python"), "packages": env.get("packages") or {}},
    }
    values = {(row["endpoint"], row["metric"]): float(row["value"]) for row in run.rows}
    return Side(
        label=path.name,
        kind="run",
        path=path,
        scenario=scenario,
        fingerprint=fingerprint,
        faults=faults_from_metadata(metadata),
        latencies=latencies,
        run_values=values,
    )


def _check_comparable(base: Side, cand: Side, options: GateOptions) -> list[str]:
    if (base.kind == "run") != (cand.kind == "run"):
        raise BadInputError(
            "compare a campaign or baseline with a campaign or baseline, or a run with a run; "
            f"got {base.kind} {base.path} and {cand.kind} {cand.path}"
        )
    differ = [
        f"{k}: {base.scenario.get(k)!r} vs {cand.scenario.get(k)!r}"
        for k in sorted(set(base.scenario) | set(cand.scenario))
        if base.scenario.get(k) != cand.scenario.get(k)
    ]
    if differ:
        raise BadInputError(f"the two sides ran different scenarios ({'; '.join(differ)}): compare like with like")
    warnings: list[str] = []
    machine = machine_differences(base.fingerprint or {}, cand.fingerprint or {})
    if machine:
        text = f"DIFFERENT MACHINES: {'; '.join(machine)}: the comparison measures the machines as much as the builds"
        if not options.allow_different_machine:
            raise BadInputError(f"{text}; refused (pass --allow-different-machine to compare anyway)")
        warnings.append(text)
    software = software_differences(base.fingerprint or {}, cand.fingerprint or {})
    if software:
        warnings.append(f"software versions differ: {'; '.join(software)}")
    for side, name in ((base, "baseline"), (cand, "candidate")):
        if banner := describe_faults(side.faults):
            warnings.append(f"{name}: {banner}")
    if base.kind == "run":
        warnings.append(ONE_RUN_WARNING)
    return warnings


# ---- the decision ---------------------------------------------------------------------------------------------


def classify(
    p_adjusted: np.ndarray,
    baseline_median: np.ndarray,
    candidate_median: np.ndarray,
    higher_is_worse: np.ndarray,
    threshold: np.ndarray,
    powered: np.ndarray,
    alpha: float = 0.05,
) -> np.ndarray:
    """Verdicts (vectorized): regression/improvement when significant and practical, by direction; no change when
    significant but small, or not significant yet ``powered`` (enough runs to have seen a practical change);
    inconclusive otherwise."""
    diff = np.asarray(candidate_median, dtype=float) - np.asarray(baseline_median, dtype=float)
    significant = np.asarray(p_adjusted) < alpha
    practical = np.abs(diff) >= np.asarray(threshold)
    worse = np.where(np.asarray(higher_is_worse), diff > 0, diff < 0)
    changed = np.where(worse, "regression", "improvement")
    quiet = np.where(np.asarray(powered) | significant, "no change", "inconclusive")
    return np.where(significant & practical, changed, quiet)


def _threshold(spec: MetricSpec, baseline_median: float, options: GateOptions) -> float:
    return max(options.min_effect * abs(baseline_median), spec.abs_floor)


def _spec(metric: str) -> MetricSpec:
    return METRICS.get(metric) or MetricSpec(metric, "", True, 0.0, gated=False)


def _new_result(endpoint: str, metric: str, a: np.ndarray, b: np.ndarray, **figures: float) -> MetricResult:
    """A metric's result before its test: its spec, whether it gates, and both sides' values."""
    spec = _spec(metric)
    return MetricResult(
        endpoint,
        metric,
        spec.unit,
        spec.higher_is_worse,
        spec.gated and endpoint != AGGREGATED,
        baseline_values=a.tolist(),
        candidate_values=b.tolist(),
        **figures,
    )


def compare_sides(base: Side, cand: Side, options: GateOptions | None = None) -> Comparison:
    """Compare two sides. Raises BadInputError when they cannot be compared (scenario, machine, kind)."""
    options = options or GateOptions()
    warnings = _check_comparable(base, cand, options)
    results = _compare_runs(base, cand, options) if base.kind == "run" else _compare_campaigns(base, cand, options)
    results.sort(key=_display_order)
    comparison = Comparison(baseline=base, candidate=cand, options=options, results=results, warnings=warnings)
    if base.kind != "run":
        family = sum(r.gated and math.isfinite(r.p_value) for r in results)
        comparison.unreachable, comparison.runs_to_reach = _reachability(base.runs, cand.runs, family, options)
        if comparison.unreachable:
            runs = comparison.unreachable.removeprefix("inconclusive: ").split(" (smallest")[0]
            for result in results:
                if result.gated and result.verdict == "inconclusive" and math.isfinite(result.p_value):
                    result.reason = f"{runs}; {result.reason.removeprefix('too noisy or too few runs: ')}"
    return comparison


def _display_order(result: MetricResult) -> tuple[bool, bool, float, str, str]:
    """Gated first; regressions and improvements first among them; then the largest change (in either direction,
    significant or not) first, so a huge effect the test could not confirm is still the first thing seen."""
    change = abs(result.change_percent) if math.isfinite(result.change_percent) else -1.0
    flagged = result.verdict in ("regression", "improvement")
    return (not result.gated, not flagged, -change, result.endpoint, result.metric)


def _reachability(runs_a: int, runs_b: int, family: int, options: GateOptions) -> tuple[str | None, int]:
    """(None, M) when ``runs_a`` vs ``runs_b`` runs can give a significant result after the correction over
    ``family`` gated tests; else the sentence saying they cannot, and M, the fewest runs per side that can."""
    needed = stats.min_runs_to_reach(options.alpha, family, options.correction)
    floor = stats.min_p_value(runs_a, runs_b)
    factor = max(1, family) if options.correction == "holm" else 1
    if floor * factor < options.alpha:
        return None, needed
    runs = f"{runs_a} runs per side" if runs_a == runs_b else f"{runs_a} baseline and {runs_b} candidate runs"
    after = f"x {factor} tests (Holm) = {floor * factor:.2g}" if factor > 1 else f"{floor:.2g}"
    return (
        f"inconclusive: {runs} cannot reach significance (smallest possible p {after}, alpha {options.alpha:g}); "
        f"use --repeat >= {needed}",
        needed,
    )


def _adjust(results: list[MetricResult], options: GateOptions) -> int:
    """Fill p_adjusted over the gated family; returns the family's size."""
    family = [r for r in results if r.gated and math.isfinite(r.p_value)]
    p = np.asarray([r.p_value for r in family])
    adjusted = stats.benjamini_hochberg(p) if options.correction == "bh" else stats.holm(p)
    for result, value in zip(family, adjusted, strict=True):
        result.p_adjusted = float(value)
    for result in results:
        if not result.gated and math.isfinite(result.p_value):
            result.p_adjusted = result.p_value  # shown, never gating: uncorrected
    return len(family)


def _seed(*parts: str) -> int:
    return zlib.crc32("|".join(parts).encode())


def _compare_campaigns(base: Side, cand: Side, options: GateOptions) -> list[MetricResult]:
    bv, cv = base.values(), cand.values()
    results: list[MetricResult] = []
    for key in sorted(set(bv) | set(cv)):
        endpoint, metric = key
        a = bv.get(key, np.empty(0))
        b = cv.get(key, np.empty(0))
        result = _new_result(endpoint, metric, a, b)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size:
            result.baseline_median = float(np.median(a))
        if b.size:
            result.candidate_median = float(np.median(b))
        if a.size < 2 or b.size < 2:
            result.reason = _missing_reason(key, a.size, b.size, base.runs, cand.runs)
        elif np.ptp(np.concatenate([a, b])) == 0:
            result.verdict, result.reason = "no change", "identical in every run"
            result.change_percent = 0.0  # nothing to test: no p-value, no part in the correction's family
        else:
            # scipy's normal approximation (used with ties) can go below what any ordering of so few runs allows
            result.p_value = max(float(stats.mann_whitney_p(a, b)), stats.min_p_value(a.size, b.size))
            result.ratio_ci = stats.bootstrap_ratio_ci(a, b, seed=_seed(endpoint, metric))
        results.append(result)
    family = max(1, _adjust(results, options))
    for result in results:
        if math.isfinite(result.p_value):
            _decide(result, _spec(result.metric), options, family, base.runs, cand.runs)
    return results


def _missing_reason(key: tuple[str, str], na: int, nb: int, runs_a: int, runs_b: int) -> str:
    endpoint, metric = key
    if metric in PERCENTILES and (na or nb or runs_a):
        return (
            f"{metric} measured in {na}/{runs_a} baseline and {nb}/{runs_b} candidate runs: it needs at least 5 "
            f"requests above it per run ({metric} of {endpoint or 'the service'}); run longer"
        )
    if na == 0 and nb == 0:
        return "not measured on either side (no sampler data?)"
    side = "baseline" if na < 2 else "candidate"
    return f"fewer than 2 runs with a value in the {side}"


def _decide(result: MetricResult, spec: MetricSpec, options: GateOptions, family: int, na: int, nb: int) -> None:
    a = np.asarray([v for v in result.baseline_values if math.isfinite(v)])
    b = np.asarray([v for v in result.candidate_values if math.isfinite(v)])
    base_med, cand_med = result.baseline_median, result.candidate_median
    result.threshold = _threshold(spec, base_med, options)
    result.change_percent = (cand_med / base_med - 1.0) * 100.0 if base_med else math.nan
    sd = math.sqrt((stats.robust_sd(a) ** 2 + stats.robust_sd(b) ** 2) / 2.0)
    alpha_worst = options.alpha / family if result.gated else options.alpha
    result.runs_needed = stats.runs_needed(sd, result.threshold, alpha_worst, options.power)
    powered = result.runs_needed is not None and min(a.size, b.size) >= result.runs_needed
    verdict = classify(
        np.asarray([result.p_adjusted]),
        np.asarray([base_med]),
        np.asarray([cand_med]),
        np.asarray([spec.higher_is_worse]),
        np.asarray([result.threshold]),
        np.asarray([powered]),
        options.alpha,
    )[0]
    result.verdict = str(verdict)
    significant = result.p_adjusted < options.alpha
    if result.verdict in ("regression", "improvement"):
        result.reason = f"significant (p_adj {result.p_adjusted:.2g}) and beyond {result.threshold:.3g} {spec.unit}"
    elif significant:
        result.reason = f"significant (p_adj {result.p_adjusted:.2g}) but within {result.threshold:.3g} {spec.unit}"
    elif powered:
        result.reason = f"not significant; {min(a.size, b.size)} runs suffice to see {result.threshold:.3g} {spec.unit}"
    else:
        needed = "more than 1000" if (result.runs_needed or 0) > 1000 else f"about {result.runs_needed}"
        result.reason = (
            f"too noisy or too few runs: {needed} runs per side would detect {result.threshold:.3g} {spec.unit}"
        )


def _compare_runs(base: Side, cand: Side, options: GateOptions) -> list[MetricResult]:
    """Single runs: one Mann-Whitney test per endpoint over its per-request latencies; each percentile's verdict
    uses that test and the percentile's own change; other metrics are shown, not tested."""
    assert base.latencies is not None and cand.latencies is not None
    results: list[MetricResult] = []
    endpoint_p: dict[str, float] = {}
    for endpoint in sorted(set(base.latencies) & set(cand.latencies)):
        a, b = base.latencies[endpoint], cand.latencies[endpoint]
        if a.size >= 2 and b.size >= 2:
            endpoint_p[endpoint] = float(stats.mann_whitney_p(a, b))
    gated_endpoints = [e for e in endpoint_p if e != AGGREGATED]
    p = np.asarray([endpoint_p[e] for e in gated_endpoints])
    adjusted = dict(
        zip(gated_endpoints, stats.benjamini_hochberg(p) if options.correction == "bh" else stats.holm(p), strict=True)
    )
    bv, cv = base.values(), cand.values()
    for key in sorted(set(bv) | set(cv)):
        endpoint, metric = key
        spec = _spec(metric)
        a, b = bv.get(key, np.asarray([math.nan])), cv.get(key, np.asarray([math.nan]))
        result = _new_result(endpoint, metric, a, b, baseline_median=float(a[0]), candidate_median=float(b[0]))
        if metric not in PERCENTILES or endpoint not in endpoint_p:
            result.gated = False
            result.reason = "not tested: one run per side has no run-to-run spread to test against"
            results.append(result)
            continue
        if not (math.isfinite(a[0]) and math.isfinite(b[0])):
            result.gated = False
            result.reason = f"{metric} needs at least 5 requests above it in each run"
            results.append(result)
            continue
        result.p_value = endpoint_p[endpoint]
        result.p_adjusted = adjusted.get(endpoint, result.p_value)
        q = PERCENTILES[metric]
        result.ratio_ci = stats.bootstrap_ratio_ci(
            base.latencies[endpoint], cand.latencies[endpoint], quantile=q, resamples=1000, seed=_seed(endpoint, metric)
        )
        result.threshold = _threshold(spec, result.baseline_median, options)
        result.change_percent = (result.candidate_median / result.baseline_median - 1.0) * 100.0
        verdict = classify(
            np.asarray([result.p_adjusted]),
            a,
            b,
            np.asarray([True]),
            np.asarray([result.threshold]),
            np.asarray([True]),
            options.alpha,
        )[0]
        result.verdict = str(verdict)
        result.reason = f"per-request test p_adj {result.p_adjusted:.2g}; practical threshold {result.threshold:.3g} ms"
        results.append(result)
    return results
