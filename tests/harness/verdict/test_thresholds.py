"""harness.verdict.thresholds: parsing the threshold syntax and evaluating it against hand-built run logs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.verdict.thresholds import Threshold, check_endpoints, evaluate, parse_thresholds, split_thresholds

ONLINE = "/v1/online/{group}/{feature}/{entity_id}"
T0 = 1_700_000_000.0  # epoch seconds of the first request in the hand-built logs

# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "endpoint", "metric", "op", "limit", "window_s"),
    [
        ("p95 < 50ms", None, "p95", "<", 50.0, None),
        (f"GET {ONLINE}: p99 <= 20ms", f"GET {ONLINE}", "p99", "<=", 20.0, None),
        ("failure_ratio < 1%", None, "failure_ratio", "<", 0.01, None),
        ("failure_ratio < 2.5%", None, "failure_ratio", "<", 0.025, None),
        ("failure_ratio <= 0", None, "failure_ratio", "<=", 0.0, None),
        ("rps >= 200", None, "rps", ">=", 200.0, None),
        ("p95 < 50ms over 30s", None, "p95", "<", 50.0, 30.0),
        ("service.rss_growth_mb < 200", None, "service.rss_growth_mb", "<", 200.0, None),
        ("p99 < 1.5s", None, "p99", "<", 1500.0, None),
        ("max<=250", None, "max", "<=", 250.0, None),
        ("p99.9 > 0.5 ms", None, "p99.9", ">", 0.5, None),
        ("mean == 7ms over 5 s", None, "mean", "==", 7.0, 5.0),
        ("requests >= 1000", None, "requests", ">=", 1000.0, None),
        ("p50 < 5ms", None, "p50", "<", 5.0, None),
        ("p75 < 5ms", None, "p75", "<", 5.0, None),
        ("p90 < 5ms", None, "p90", "<", 5.0, None),
        ("service.cpu_percent < 180", None, "service.cpu_percent", "<", 180.0, None),
        ("generator.cpu_percent < 90%", None, "generator.cpu_percent", "<", 90.0, None),
        ("service.rss_mb <= 512", None, "service.rss_mb", "<=", 512.0, None),
        ("  p95 < 50ms  ", None, "p95", "<", 50.0, None),
        # endpoint names with spaces, slashes, braces and colons: split on the last ': '
        ("POST /v1/batch lookup: p50 < 5ms", "POST /v1/batch lookup", "p50", "<", 5.0, None),
        ("weird: name {x}: p90 < 3ms", "weird: name {x}", "p90", "<", 3.0, None),
        ("GET /a:b/{c}: p75 < 2ms over 10s", "GET /a:b/{c}", "p75", "<", 2.0, 10.0),
        ("/health: failure_ratio == 0", "/health", "failure_ratio", "==", 0.0, None),
    ],
)
def test_parse_accepts_the_documented_syntax(
    text: str, endpoint: str | None, metric: str, op: str, limit: float, window_s: float | None
) -> None:
    t = Threshold.parse(text)
    assert (t.endpoint, t.metric, t.op, t.window_s) == (endpoint, metric, op, window_s)
    assert t.limit == pytest.approx(limit)
    assert t.text == text.strip()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "it is empty"),
        ("p98 < 5ms", "unknown metric 'p98'"),
        ("GET /x:p95 < 5ms", "write '<endpoint>: <metric> ...'"),
        ("p95 50ms", "expected an operator (< <= > >= ==) after 'p95'"),
        ("p95 ~ 50ms", "expected an operator"),
        ("p95 < fast", "expected a number with optional unit ms|s|%, got 'fast'"),
        ("p95 < 5xs", "got '5xs'"),
        ("p95 < 5%", "p95 is a latency: use ms (the default) or s, not %"),
        ("p95 < -1ms", "the limit must be >= 0"),
        # a bare 1 used to mean a ratio of 1 (100%): it always passed; the % is required but for 0
        ("failure_ratio < 1", "failure_ratio needs the % sign: write 1%"),
        ("failure_ratio < 0.01", "failure_ratio needs the % sign: write 0.01%"),
        ("failure_ratio < 101%", "failure_ratio is within 0%..100%, got 101%"),
        ("failure_ratio < 5ms", "failure_ratio takes a percentage (1%), not ms"),
        ("rps >= 5ms", "rps takes a plain number in req/s"),
        ("service.rss_mb < 5%", "service.rss_mb takes a plain number in MB"),
        ("p95 < 5ms over 0s", "the window must be longer than 0 s"),
        (": p95 < 5ms", "the endpoint name before ': ' is empty"),
        ("GET /x: service.rss_mb < 5", "cannot be scoped to an endpoint"),
    ],
)
def test_parse_errors_quote_the_threshold_and_say_what_was_expected(text: str, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        Threshold.parse(text)
    message = str(info.value)
    assert message.startswith(f"invalid threshold {text!r}: ")
    assert expected in message


def test_structural_errors_show_the_grammar() -> None:
    with pytest.raises(ValueError, match=r"expected '\[<endpoint>: \]<metric> <op> <value>"):
        Threshold.parse("latency < 5ms")


def test_parse_thresholds_parses_each() -> None:
    assert [t.metric for t in parse_thresholds(["p95 < 1ms", "rps > 2"])] == ["p95", "rps"]


def test_split_thresholds_reads_semicolons_and_newlines_from_one_value() -> None:
    values = ["p95 < 50ms; failure_ratio < 1%", "rps > 2\n\n p99 < 1s ;", "GET /a: p50 < 5ms"]
    assert split_thresholds(values) == ["p95 < 50ms", "failure_ratio < 1%", "rps > 2", "p99 < 1s", "GET /a: p50 < 5ms"]


def test_check_endpoints_accepts_the_name_with_or_without_its_request_type() -> None:
    known = ["GET /v1/online/{group}/{feature}/{entity_id}", "POST /v1/load/io"]
    check_endpoints(parse_thresholds([f"GET {ONLINE}: p95 < 5ms", "/v1/load/io: p99 < 9ms", "p95 < 1ms"]), known)


def test_check_endpoints_refuses_an_unknown_endpoint_listing_the_known_ones() -> None:
    known = ["GET /v1/online/{group}/{feature}/{entity_id}", "POST /v1/load/io"]
    with pytest.raises(ValueError) as info:
        check_endpoints(parse_thresholds(["POST /v1/online/{group}/{feature}/{entity_id}: p95 < 5ms"]), known)
    assert str(info.value) == (
        "threshold 'POST /v1/online/{group}/{feature}/{entity_id}: p95 < 5ms' names an unknown endpoint "
        "'POST /v1/online/{group}/{feature}/{entity_id}'; this locustfile's requests are: "
        "GET /v1/online/{group}/{feature}/{entity_id}, POST /v1/load/io"
    )


# ---------------------------------------------------------------- evaluation: request log

Build = Callable[..., "pa.Table | pd.DataFrame"]


@pytest.fixture(params=["arrow", "pandas"])
def build(request: pytest.FixtureRequest) -> Build:
    """A factory for request logs in the run-directory contract, as a pyarrow Table or a pandas DataFrame."""

    def make(
        ts_s: list[float] | np.ndarray,
        latency_ms: list[float] | np.ndarray,
        *,
        name: str | list[str] = "/a",
        request_type: str | list[str] = "GET",
        ok: bool | list[bool] | np.ndarray = True,
    ) -> pa.Table | pd.DataFrame:
        n = len(ts_s)

        def column(v: object) -> list:
            return list(v) if isinstance(v, list | np.ndarray) else [v] * n

        frame = pd.DataFrame(
            {
                "ts_s": np.asarray(ts_s, dtype=np.float64) + T0,
                "request_type": column(request_type),
                "name": column(name),
                "latency_ms": np.asarray(latency_ms, dtype=np.float64),
                "ok": np.asarray(column(ok), dtype=bool),
                "response_bytes": np.full(n, 100, dtype=np.int64),
                "error": [None] * n,
                "worker": ["w0"] * n,
            }
        )
        return pa.Table.from_pandas(frame, preserve_index=False) if request.param == "arrow" else frame

    return make


@pytest.fixture
def two_endpoints(build: Build) -> pa.Table | pd.DataFrame:
    """200 requests over 10 s: GET /a with latencies 1..100 ms, POST /b with 101..200 ms, shuffled; 3 failed."""
    rng = np.random.default_rng(7)
    latency = np.arange(1, 201, dtype=np.float64)
    order = rng.permutation(200)
    names = np.where(latency <= 100, "/a", "/b")[order]
    types = np.where(latency <= 100, "GET", "POST")[order]
    ok = np.ones(200, dtype=bool)
    ok[[5, 50, 150]] = False
    return build(
        np.linspace(0, 10, 200), latency[order], name=list(names), request_type=list(types), ok=list(ok[order])
    )


@pytest.mark.parametrize(
    ("text", "measured"),
    [
        # nearest rank over 1..200: the ceil(p/100 * 200)-th smallest
        ("p50 < 1000ms", 100.0),
        ("p75 < 1000ms", 150.0),
        ("p90 < 1000ms", 180.0),
        ("p95 < 1000ms", 190.0),
        ("p99 < 1000ms", 198.0),
        ("p99.9 < 1000ms", 200.0),
        ("max < 1000ms", 200.0),
        ("mean < 1000ms", 100.5),
        # per endpoint, by name or by '<request_type> <name>'
        ("/a: p50 < 1000ms", 50.0),
        ("GET /a: p95 < 1000ms", 95.0),
        ("GET /a: p99.9 < 1000ms", 100.0),
        ("POST /b: p99 < 1000ms", 199.0),
        ("/b: mean < 1000ms", 150.5),
        ("failure_ratio < 2%", 0.015),
        ("rps > 1", 20.0),
        ("requests > 1", 200.0),
        ("GET /a: requests > 1", 100.0),
        ("/b: rps > 1", 10.0),
    ],
)
def test_aggregate_metrics_are_exact(two_endpoints: pa.Table | pd.DataFrame, text: str, measured: float) -> None:
    result = evaluate([text], two_endpoints, duration_s=10.0).results[0]
    assert result.status == "pass"
    assert result.measured == pytest.approx(measured)
    assert result.window_start_s is None


def test_failure_ratio_and_rps_pass_or_fail_against_the_limit(two_endpoints: pa.Table | pd.DataFrame) -> None:
    verdict = evaluate(
        ["failure_ratio < 1%", "failure_ratio < 2%", "rps >= 20", "rps > 20", "requests == 200", "p95 < 190ms"],
        two_endpoints,
        duration_s=10.0,
    )
    assert [r.status for r in verdict.results] == ["fail", "pass", "pass", "fail", "pass", "fail"]
    assert not verdict.passed
    assert verdict.results[0].detail == "measured 1.50% (3 of 200 requests failed)"
    assert verdict.results[3].detail == "measured 20.0 req/s (200 requests in 10 s)"


def test_endpoint_without_requests_is_an_error_listing_known_endpoints(two_endpoints: pa.Table | pd.DataFrame) -> None:
    verdict = evaluate(["POST /a: p50 < 5ms", "p50 < 1000ms"], two_endpoints, duration_s=10.0)
    error = verdict.results[0]
    assert (error.status, error.measured) == ("error", None)
    assert error.detail == "no requests for endpoint 'POST /a'; known endpoints: GET /a, POST /b"
    assert not verdict.passed
    assert verdict.lines() == [f"ERROR POST /a: p50 < 5ms: {error.detail}"]


def test_empty_log_latency_is_an_error_and_rps_is_zero(build: Build) -> None:
    verdict = evaluate(["p95 < 50ms", "rps >= 1"], build([], []), duration_s=10.0)
    assert [(r.status, r.measured) for r in verdict.results] == [("error", None), ("fail", 0.0)]
    assert verdict.results[0].detail == "no requests in the log"


def test_windowed_breach_in_exactly_one_window(build: Build) -> None:
    """60 s at 10 req/s, all 5 ms except 10% of the requests in [30 s, 40 s) at 100 ms."""
    ts = np.arange(600) / 10.0
    latency = np.full(600, 5.0)
    latency[300:400:10] = 100.0
    log = build(ts, latency)
    verdict = evaluate(["p95 < 50ms over 10s", "p95 < 50ms", "p99 <= 100ms over 10s"], log, duration_s=60.0)
    windowed, whole, holds = verdict.results
    assert (windowed.status, windowed.measured, windowed.window_start_s) == ("fail", 100.0, 30.0)
    assert windowed.detail == "measured 100 ms in the window starting at 30 s (100 requests; worst of 6 windows)"
    assert (whole.status, whole.measured) == ("pass", 5.0)
    assert holds.status == "pass"
    # without the bad window's slow requests every window passes
    latency[300:400:10] = 5.0
    assert evaluate(["p95 < 50ms over 10s"], build(ts, latency), duration_s=60.0).passed


def test_windowed_rps_reports_the_emptiest_window(build: Build) -> None:
    """Requests only in the first 30 s of a 60 s run: the rps floor breaks in the window at 30 s."""
    log = build(np.arange(300) / 10.0, np.full(300, 1.0))
    result = evaluate(["rps >= 5 over 10s"], log, duration_s=60.0).results[0]
    assert (result.status, result.measured, result.window_start_s) == ("fail", 0.0, 30.0)
    latency_result = evaluate(["p95 < 50ms over 10s"], log, duration_s=60.0).results[0]
    assert latency_result.status == "pass"
    assert "3 empty windows skipped" in latency_result.detail


def test_trailing_partial_window_counts_only_if_at_least_half_a_window(build: Build) -> None:
    ts = np.arange(650) / 10.0  # 65 s at 10 req/s
    log = build(ts, np.full(650, 1.0))
    with_partial = evaluate(["rps >= 10 over 10s"], log, duration_s=65.0).results[0]
    assert with_partial.status == "pass"
    assert "worst of 7 windows" in with_partial.detail  # the last 5 s is half a window: it counts
    assert with_partial.measured == pytest.approx(10.0)  # rps divides by the seconds the partial window covers
    without = evaluate(["rps >= 10 over 10s"], log, duration_s=64.9).results[0]
    assert "worst of 6 windows" in without.detail
    counts = evaluate(["requests >= 100 over 10s"], log, duration_s=65.0).results[0]
    assert "worst of 6 windows" in counts.detail  # 'requests' never uses a partial window


def test_the_last_request_at_the_run_end_belongs_to_the_last_window(build: Build) -> None:
    log = build([0.0, 5.0, 10.0], [1.0, 1.0, 500.0])
    result = evaluate(["max < 100ms over 5s"], log, duration_s=10.0).results[0]
    assert (result.status, result.measured, result.window_start_s) == ("fail", 500.0, 5.0)


def test_explicit_start_shifts_the_windows(build: Build) -> None:
    log = build([5.0, 15.0], [1.0, 100.0])
    result = evaluate(["max < 50ms over 10s"], log, duration_s=20.0, start_s=T0 + 5.0).results[0]
    assert (result.measured, result.window_start_s) == (100.0, 10.0)


def test_window_longer_than_the_run_is_an_error(build: Build) -> None:
    result = evaluate(["p95 < 5ms over 60s"], build([0.0, 1.0], [1.0, 1.0]), duration_s=20.0).results[0]
    assert result.status == "error"
    assert result.detail == "the run lasted 20 s, less than half the 60 s window"


def test_bad_inputs_raise_with_what_is_expected(build: Build) -> None:
    with pytest.raises(ValueError, match="duration_s must be > 0 seconds"):
        evaluate(["p95 < 5ms"], build([0.0], [1.0]), duration_s=0)
    with pytest.raises(ValueError, match=r"request log lacks columns \['latency_ms'\]"):
        evaluate(["p95 < 5ms"], pd.DataFrame({"ts_s": [1.0], "request_type": ["GET"], "name": ["/"], "ok": [True]}), 1)
    with pytest.raises(ValueError, match="invalid threshold 'p95 <'"):
        evaluate(["p95 <"], build([0.0], [1.0]), duration_s=1.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from(["p50", "p75", "p90", "p95", "p99", "p99.9"]),
)
def test_percentiles_are_nearest_rank(latencies: list[float], metric: str) -> None:
    log = pd.DataFrame(
        {"ts_s": np.arange(len(latencies), dtype=float), "request_type": "GET", "name": "/a", "ok": True}
    ).assign(latency_ms=latencies)
    measured = evaluate([f"{metric} < 1e9ms"], log, duration_s=1000.0).results[0].measured
    q = float(metric[1:])
    assert measured == np.percentile(np.asarray(latencies), q, method="inverted_cdf")


def test_a_million_rows_evaluate_quickly(build: Build) -> None:
    n = 1_000_000
    rng = np.random.default_rng(1)
    log = build(np.sort(rng.uniform(0, 200, n)), rng.exponential(10, n), name=list(rng.choice(["/a", "/b"], n)))
    started = time.perf_counter()
    verdict = evaluate(["p99 < 1s", "/a: p95 < 1s over 10s", "failure_ratio < 1%", "rps > 1"], log, duration_s=200)
    assert verdict.passed, verdict.lines()
    assert time.perf_counter() - started < 10.0


# ---------------------------------------------------------------- evaluation: resource samples


@pytest.fixture
def samples() -> pd.DataFrame:
    """20 ticks, two service processes: A grows 100 -> 290 MB at 50% CPU, B stays at 50 MB at 30% CPU."""
    mb = 2**20
    rows = []
    for i in range(20):
        rows.append({"ts_s": T0 + i, "scope": "service", "cpu_percent": 50.0, "rss_bytes": (100 + 10 * i) * mb})
        rows.append({"ts_s": T0 + i, "scope": "service", "cpu_percent": 30.0, "rss_bytes": 50 * mb})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("as_arrow", [False, True])
def test_resource_metrics_sum_processes_per_sample(samples: pd.DataFrame, as_arrow: bool) -> None:
    table = pa.Table.from_pandas(samples, preserve_index=False) if as_arrow else samples
    verdict = evaluate(
        [
            "service.rss_growth_mb < 200",
            "service.rss_growth_mb < 150",
            "service.rss_mb <= 340",
            "service.cpu_percent < 90",
        ],
        None,
        duration_s=20.0,
        samples=table,
    )
    # sums per tick are 150 + 10 i MB; the medians of the first and last 2 samples are 155 and 335 MB
    assert [(r.status, r.measured) for r in verdict.results] == [
        ("pass", 180.0),
        ("fail", 180.0),
        ("pass", 340.0),
        ("pass", 80.0),
    ]
    assert verdict.results[1].unit == "MB"
    assert verdict.lines() == [
        "FAIL  service.rss_growth_mb < 150: measured 180 MB (20 service samples, last-10% minus first-10% medians)"
    ]


def test_resource_metric_without_sampler_data_is_an_error(samples: pd.DataFrame, build: Build) -> None:
    log = build([0.0], [1.0])
    missing = evaluate(["service.rss_growth_mb < 200"], log, duration_s=1.0).results[0]
    assert (missing.status, missing.detail) == ("error", "no sampler data for service")
    other_scope = evaluate(["generator.cpu_percent < 90"], log, duration_s=1.0, samples=samples).results[0]
    assert (other_scope.status, other_scope.detail) == ("error", "no sampler data for generator")


def test_windowed_resource_metric(samples: pd.DataFrame) -> None:
    result = evaluate(["service.rss_growth_mb < 50 over 10s"], None, duration_s=20.0, samples=samples).results[0]
    # 10 samples per window, so 10% is one sample: [0, 10) grows 150 -> 240 MB, [10, 20) 250 -> 340 MB;
    # the two tie and the first is reported
    assert (result.status, result.measured, result.window_start_s) == ("fail", 90.0, 0.0)
    assert "(10 service samples, last-10% minus first-10% medians; worst of 2 windows)" in result.detail


# ---------------------------------------------------------------- verdict


def test_verdict_lines_and_dict(two_endpoints: pa.Table | pd.DataFrame) -> None:
    verdict = evaluate(["p95 < 50ms", "failure_ratio < 2%", "GET /nope: p50 < 1ms"], two_endpoints, duration_s=10.0)
    assert verdict.lines() == [
        "FAIL  p95 < 50ms: measured 190 ms (200 requests)",
        "ERROR GET /nope: p50 < 1ms: no requests for endpoint 'GET /nope'; known endpoints: GET /a, POST /b",
    ]
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["passed"] is False
    assert "nearest rank" in data["percentile_method"]
    assert "tumbling windows" in data["window_rule"]
    assert data["results"][0] == {
        "threshold": "p95 < 50ms",
        "status": "fail",
        "measured": 190.0,
        "unit": "ms",
        "limit": 50.0,
        "window_start_s": None,
        "detail": "measured 190 ms (200 requests)",
    }


def test_no_thresholds_pass() -> None:
    verdict = evaluate([], None, duration_s=1.0)
    assert verdict.passed and verdict.lines() == []
