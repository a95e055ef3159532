"""HDR histograms: percentiles within 1% of the exact nearest rank, exact merging across workers and late rows,
the worker-report round trip, thresholds from the histograms, the request-log policy, and flat memory."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from harness.recording.recorder import REQUEST_SCHEMA, batch_from_bytes, batch_to_bytes
from harness.timing.hdr import HDR_FILE, IntervalHistograms, counts, percentile_ms, rows_from_table, rows_to_batch
from harness.timing.hdr_log import HdrLogWriter, read_hdr
from harness.timing.latency import LatencySide, RequestLogPolicy
from harness.verdict.hdr_thresholds import HdrVerdict, evaluate_run
from harness.verdict.thresholds import parse_thresholds

T0 = 1_767_000_000


def _exact(values: np.ndarray, p: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(p / 100 * ordered.size)) - 1])


def test_percentiles_within_one_percent_of_exact_nearest_rank() -> None:
    rng = np.random.default_rng(1)
    values = rng.lognormal(np.log(3.0), 1.2, 200_000)  # ms, 0.03 ms .. seconds
    hist = IntervalHistograms()
    for v in values:
        hist.record(T0, "response", "GET", "/x", float(v), False)
    (row,) = hist.take()
    for p in (50, 90, 99, 99.9, 100):
        assert percentile_ms(row.histogram, p) == pytest.approx(_exact(values, p), rel=0.01, abs=0.001)


def test_merging_workers_and_late_rows_is_exact() -> None:
    rng = np.random.default_rng(2)
    values = rng.exponential(5.0, 30_000)
    workers = [IntervalHistograms() for _ in range(3)]
    single = IntervalHistograms()
    for i, v in enumerate(values):
        workers[i % 3].record(T0 + i % 4, "response", "GET", "/x", float(v), i % 7 == 0)
        single.record(T0 + i % 4, "response", "GET", "/x", float(v), i % 7 == 0)
    master = IntervalHistograms()
    for w in workers:  # through Locust's report: Arrow batch bytes, as harness.timing.latency ships them
        master.add(list(rows_from_table(batch_from_bytes(batch_to_bytes(rows_to_batch(w.take()))))))
    merged = {r.key: r for r in master.take()}
    for r in single.take():
        m = merged[r.key]
        assert (m.count, m.failures) == (r.count, r.failures)
        assert np.array_equal(counts(m.histogram), counts(r.histogram))


def _write_hdr(path: Path, seconds: int, slow_window: tuple[int, int] | None = None) -> np.ndarray:
    rng = np.random.default_rng(3)
    writer = HdrLogWriter(path)
    hist = IntervalHistograms()
    all_values = []
    for s in range(seconds):
        values = rng.exponential(2.0, 500)
        if slow_window and slow_window[0] <= s < slow_window[1]:
            values = values + 400.0
        for v in values:
            hist.record(T0 + s + 0.5, "response", "GET", "/x", float(v), False)
        all_values.append(values)
        writer.add(hist.take())
        writer.flush(T0 + s + 1)
    writer.close()
    return np.concatenate(all_values)


def test_thresholds_from_histograms_match_the_exact_log(tmp_path: Path) -> None:
    values = _write_hdr(tmp_path / HDR_FILE, 30, slow_window=(20, 22))
    thresholds = parse_thresholds(["p99 < 50ms", "p50 < 5ms", "p95 < 50ms over 10s", "requests >= 15000"])
    verdict = evaluate_run(thresholds, None, 30.0, start_s=T0, hdr_path=tmp_path / HDR_FILE)
    assert isinstance(verdict, HdrVerdict) and verdict.to_dict()["percentile_source"] == "hdr"
    p99, p50, windowed, requests = verdict.results
    assert p99.measured == pytest.approx(_exact(values, 99), rel=0.01) and p99.status == "fail"
    assert p50.measured == pytest.approx(_exact(values, 50), rel=0.01) and p50.status == "pass"
    assert windowed.status == "fail" and windowed.window_start_s == 20  # the slow seconds' window
    assert windowed.measured == pytest.approx(_exact(values[20 * 500 : 22 * 500].copy(), 50) + 0, rel=0.5)
    assert requests.measured == 15_000 and requests.status == "pass"


def test_request_log_policy() -> None:
    assert RequestLogPolicy.parse("full").mode == "full"
    assert RequestLogPolicy.parse("sample:10%").probability == pytest.approx(0.1)
    assert RequestLogPolicy.parse("auto").full_rows == 1_000_000
    with pytest.raises(ValueError, match="sample:P"):
        RequestLogPolicy.parse("sample:2")
    side = LatencySide("sample:0.25", seed=4)
    kept = sum(side.keep_row() for _ in range(20_000))
    assert 4_500 < kept < 5_500
    assert not any(LatencySide("off").keep_row() for _ in range(100))


def _peak_bytes(run, *args) -> int:
    tracemalloc.start()
    try:
        run(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_run_grows(tmp_path: Path) -> None:
    """Scaled down: 10x more seconds must not cost 10x the memory, neither to record (the writer holds only the
    grace window) nor to summarize (one histogram per group). The full-size command is in the README."""
    from harness.report.open_model import open_model_summary

    def record(seconds: int) -> None:
        _write_hdr(tmp_path / f"{seconds}" / HDR_FILE, seconds)

    def summarize(seconds: int) -> None:
        open_model_summary(tmp_path / f"{seconds}", None, T0)

    for seconds in (20, 200):
        (tmp_path / f"{seconds}").mkdir()
    record_small, record_large = _peak_bytes(record, 20), _peak_bytes(record, 200)
    summary_small, summary_large = _peak_bytes(summarize, 20), _peak_bytes(summarize, 200)
    print(f"\npeak traced memory: record 20 s {record_small / 2**20:.1f} MB, 200 s {record_large / 2**20:.1f} MB; "
          f"summary 20 s {summary_small / 2**20:.1f} MB, 200 s {summary_large / 2**20:.1f} MB")  # fmt: skip
    assert record_large < 1.5 * record_small
    assert summary_large < 2.0 * summary_small
    table = read_hdr(tmp_path / "200" / HDR_FILE)
    assert table.num_rows == 200 and table.schema.names[0] == "interval_s"
    assert REQUEST_SCHEMA.field("latency_ms").type == pa.float64()
