"""HDR is the source of truth when the raw request log is not complete (``--request-log sample:P|off``): the
report's headline, endpoint table and timeline come from latency.hdr.arrows (harness.report.rundata.hdr_requests) and
say so, and the stress profile's live probes (breach check, requests/s) read the histograms instead of the sample.

Each run is a real headless Locust run against the embedded service: a stress profile of 2-second steps, so the
probes fire within the few seconds of load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from harness.report.rundata.view import load_view
from harness.timing.hdr import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS
from harness.timing.hdr_log import read_hdr
from tests.locust_runs import FinishedRun, run_locust

pytestmark = pytest.mark.slow

_PROFILE = """description = "stress in 2 s steps, for tests"
shape = "stress"
thresholds = [{threshold!r}]

[params]
start_users = 2
step_users = 2
step_s = 2
max_users = 4
spawn_rate = 10
max_duration_s = 8
"""


def _stress(tmp_path: Path, name: str, threshold: str, request_log: str) -> FinishedRun:
    profile = tmp_path / f"{name}.toml"
    profile.write_text(_PROFILE.format(threshold=threshold))
    return run_locust(tmp_path / name, "--profile", str(profile), "--request-log", request_log,
                      "--catalog-size", "300")  # fmt: skip


def _hdr_all_requests(run_dir: Path) -> HdrHistogram:
    """Every "response" histogram of the run added into one, with hdrh itself (not the harness's reader)."""
    merged = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    table = read_hdr(run_dir / "latency.hdr.arrows")
    for kind, encoded in zip(table.column("kind").to_pylist(), table.column("histogram").to_pylist(), strict=True):
        if kind == "response":
            merged.add(HdrHistogram.decode(encoded))
    return merged


def _nearest_rank_ms(histogram: HdrHistogram, percentile: float) -> float:
    """The value of rank ceil(p/100 * n) (its bucket's highest value, HDR's guarantee: within 0.1%), in ms."""
    rank = math.ceil(percentile / 100.0 * histogram.get_total_count())
    seen = 0
    for item in histogram.get_recorded_iterator():
        seen += item.count_at_value_iterated_to
        if seen >= rank:
            return histogram.get_highest_equivalent_value(item.value_iterated_to) / 1000.0
    raise AssertionError("rank beyond the histogram")


def _assert_headline_is_hdr(run: FinishedRun) -> None:
    total = run.metadata["locust_totals"]["requests"]
    headline, requests = run.summary["headline"], run.summary["requests"]
    assert run.metadata["requests_recorded"] < total  # the log is incomplete ...
    assert headline["requests"] == total > 0  # ... and the headline counts every request, as Locust did
    assert sum(e["requests"] for e in requests["endpoints"]) == total
    assert requests["source"] == "latency.hdr.arrows" and headline["source"] == "HDR, within 1%"
    merged = _hdr_all_requests(run.run_dir)
    assert merged.get_total_count() == total
    for q in (50, 95, 99):  # nearest rank over the same histograms, read with hdrh's own iterator
        expected_ms = _nearest_rank_ms(merged, q)
        assert headline[f"p{q}_ms"] == pytest.approx(expected_ms, rel=1e-3, abs=1e-3), q
    assert run.summary["verdict"]["status"] != "NO REQUESTS"
    buckets = load_view(run.run_dir).buckets  # the timeline's throughput: every request, not the sample's
    assert buckets is not None and round(float(buckets.requests.sum()) * buckets.bucket_s) == total
    assert float(np.nanmax(buckets.total_ms["p99"])) > 0
    html = run.report_html
    assert 'id="headline-source"' in html and "HDR, within 1%" in html
    assert "Source: latency.hdr.arrows (HDR, within 1%)" in html  # the endpoint table's caption


def test_request_log_off_headline_and_breach_probe_come_from_hdr(tmp_path: Path) -> None:
    # 2 users send ~30 requests in a 2 s step: the breach check must count them all (the log holds none)
    run = _stress(tmp_path, "off", "requests < 10", "off")
    assert run.metadata["request_log"]["mode"] == "off" and run.metadata["requests_recorded"] == 0
    _assert_headline_is_hdr(run)
    found = run.metadata["shape_result"]
    assert found["stopped_because"] == "breach", found
    assert found["breached_at_users"] == 2 and "requests < 10: measured" in found["breach"]
    assert run.metadata["stop_reason"] == "threshold breach"
    assert run.code == 3  # the whole run breaks the threshold too (judged on the histograms)


def test_sampled_request_log_headline_and_rps_probe_come_from_hdr(tmp_path: Path) -> None:
    run = _stress(tmp_path, "sampled", "p99 < 10s", "sample:0.1")
    assert run.code == 0, run.stderr[-3000:]
    _assert_headline_is_hdr(run)
    found = run.metadata["shape_result"]
    assert found["stopped_because"] == "max_users" and found["breach"] is None, found
    # requests/s over each 2 s step, from the histograms: what Locust measured, not a tenth of it
    total_rps = run.metadata["locust_totals"]["requests"] / run.metadata["duration_s"]
    step_rps = [s["rps"] for s in found["steps"]]
    assert all(rps > 0.5 * total_rps / 2 for rps in step_rps), (step_rps, total_rps)
    assert run.summary["requests"]["ok_ko_note"].startswith("a sample of the requests")
