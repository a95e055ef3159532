"""What a Locust process does with each request besides Locust's own statistics: the HDR histograms
(``harness.timing.hdr``), the open model's two latencies, and the raw request log's policy (``--request-log``).

One ``LatencySide`` per Locust process, reachable by the users as ``environment.featureload_latency``. In a worker
it fills Locust's worker reports (``fill_report``); on the master (or the only process) it merges them and writes
``latency.hdr.arrows`` (``harness.timing.hdr_log``).

Open model: an arrival greenlet carries its intended start (``harness.timing.arrivals``); the request it sends is then
recorded twice: "response" from the intended start (what a user would have waited), "service" from the actual send
(Locust's response time). The raw log's ``latency_ms`` is the response time, so every figure a threshold judges is
the latency a user saw.

``--request-log``:

    full       every request in requests.arrows (exact nearest-rank figures; grows without bound)
    sample:P   each request kept with probability P (0 < P <= 1); counts come from the histograms
    off        no request rows; every figure comes from the histograms
    auto       (default) full for the first AUTO_FULL_ROWS requests of a process, then sample:AUTO_SAMPLE: short
               runs keep their exact log, a long run's log and its report stay bounded
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import pyarrow as pa
import pyarrow.compute as pc

from harness.locust_side.options import REQUEST_LOG_AUTO_FULL_ROWS, REQUEST_LOG_AUTO_SAMPLE
from harness.recording.recorder import batch_from_bytes, batch_to_bytes
from harness.timing.hdr import HDR_FILE, HdrRow, IntervalHistograms, release, rows_from_table, rows_to_batch
from harness.timing.hdr_log import HdrLogWriter

__all__ = [
    "AUTO_FULL_ROWS",
    "AUTO_SAMPLE",
    "HDR_REPORT_KEY",
    "INTENDED_ATTR",
    "LatencySide",
    "RequestLogPolicy",
    "latency_side",
]

HDR_REPORT_KEY = "featureload_hdr"
INTENDED_ATTR = "featureload_intended"  # on an arrival greenlet: (intended monotonic s, intended epoch s)
AUTO_FULL_ROWS = REQUEST_LOG_AUTO_FULL_ROWS  # --request-log auto (declared with the other options)
AUTO_SAMPLE = REQUEST_LOG_AUTO_SAMPLE
RECENT_HDR_S = 120.0  # the master keeps this many seconds of encoded histograms for the live probes


@dataclass(frozen=True)
class RequestLogPolicy:
    """Which requests go into requests.arrows: ``mode`` full | sample | off | auto, ``probability`` for
    sample (and for auto after ``full_rows`` rows)."""

    mode: str
    probability: float = 1.0
    full_rows: int | None = None

    @classmethod
    def parse(cls, text: str) -> RequestLogPolicy:
        """``full``, ``sample:P`` (0 < P <= 1, or a percentage ``sample:5%``), ``off`` or ``auto``; raises
        ValueError saying what is expected."""
        value = (text or "auto").strip().lower()
        if value in ("full", "off"):
            return cls(value, 1.0 if value == "full" else 0.0)
        if value == "auto":
            return cls("auto", AUTO_SAMPLE, AUTO_FULL_ROWS)
        if value.startswith("sample:"):
            raw = value.split(":", 1)[1]
            try:
                p = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
            except ValueError:
                p = -1.0
            if 0 < p <= 1:
                return cls("sample", p)
        raise ValueError(f"--request-log {text!r} is invalid: expected full, sample:P (0 < P <= 1, e.g. sample:0.1 "
                         "or sample:10%), off or auto")  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """For metadata.json: what the request log holds."""
        out: dict[str, Any] = {"mode": self.mode, "probability": self.probability}
        if self.full_rows is not None:
            out["full_rows_per_process"] = self.full_rows
        return out


class LatencySide:
    """A process's histograms, open-model timing and request-log policy; ``writer`` only on the master."""

    def __init__(self, policy: Callable[[], str] | str, writer: HdrLogWriter | None = None,
                 seed: int | None = None) -> None:  # fmt: skip
        # the policy's text is read again when it changes: a worker gets the master's options with its first spawn
        self._policy_text = policy if callable(policy) else (lambda: policy)
        self._parsed: tuple[str, RequestLogPolicy] | None = None
        self.histograms = IntervalHistograms()
        self.writer = writer
        self.rows_seen = 0
        self.rows_kept = 0
        self.open_model: dict[str, Any] = {}  # filled by harness.timing.arrivals (rate plan, arrivals settings)
        self.stopping = False  # Locust fired test_stopping: the open model plans no more arrivals
        self._random = random.Random(seed)
        self._recent: deque[pa.RecordBatch] = deque()  # master: encoded rows of the last RECENT_HDR_S seconds

    @classmethod
    def for_run_dir(cls, run_dir: Path, request_log: Callable[[], str] | str) -> LatencySide:
        """The master's (or the only process's) side, writing ``run_dir/latency.hdr.arrows``."""
        side = cls(request_log, HdrLogWriter(Path(run_dir) / HDR_FILE))
        _ = side.policy  # an invalid --request-log is refused before the run starts
        return side

    @property
    def policy(self) -> RequestLogPolicy:
        """The request log's policy (``--request-log``); raises ValueError for an invalid one."""
        text = self._policy_text() or "auto"
        if self._parsed is None or self._parsed[0] != text:
            self._parsed = (text, RequestLogPolicy.parse(text))
        return self._parsed[1]

    # ---- per request --------------------------------------------------------------------------------------------

    def observe(self, request_type: str, name: str, response_time_ms: float, start_time_s: float | None,
                failed: bool) -> tuple[float, float]:  # fmt: skip
        """Record one request in the histograms; return (start epoch s, latency ms) as a user saw it: from the
        intended start for an open-model arrival, else Locust's own start and response time."""
        intended = getattr(gevent.getcurrent(), INTENDED_ATTR, None)
        if intended is None:
            now_s = time.time()
            started_s = start_time_s if start_time_s is not None else now_s - response_time_ms / 1000.0
            self.histograms.record(now_s, "response", request_type, name, response_time_ms, failed)
            return started_s, response_time_ms
        intended_mono_s, intended_epoch_s = intended
        since_s = time.monotonic() - intended_mono_s
        now_s = intended_epoch_s + since_s  # one clock read: the epoch of the intended start is known
        response_ms = max(since_s * 1000.0, response_time_ms)
        record = self.histograms.record
        record(now_s, "response", request_type, name, response_ms, failed)
        record(now_s, "service", request_type, name, response_time_ms, failed)
        return intended_epoch_s, response_ms

    def keep_row(self) -> bool:
        """Whether this request goes into the raw log (``--request-log``)."""
        self.rows_seen += 1
        policy = self.policy
        if policy.mode == "full" or (policy.full_rows is not None and self.rows_seen <= policy.full_rows):
            keep = True
        elif policy.mode == "off":
            keep = False
        else:
            keep = self._random.random() < policy.probability
        self.rows_kept += keep
        return keep

    # ---- shipping and writing -----------------------------------------------------------------------------------

    def fill_report(self, data: dict[str, Any]) -> None:
        """Worker: put every histogram held into Locust's report (finished seconds and the current one: the
        master adds rows of the same second)."""
        rows = self.histograms.take()
        batch = rows_to_batch(rows)
        for row in rows:
            release(row.histogram)
        if batch is not None:
            data[HDR_REPORT_KEY] = batch_to_bytes(batch)

    def on_worker_report(self, data: dict[str, Any]) -> int:
        """Master: merge a worker's histograms; return the arrivals the report says the worker scheduled (its
        "lag" rows: sent plus dropped; 0 outside the open model)."""
        payload = data.get(HDR_REPORT_KEY)
        if not payload or self.writer is None:
            return 0
        table = batch_from_bytes(payload)
        self._keep_recent(table.to_batches())
        lag = table.filter(pc.equal(table.column("kind"), "lag"))
        scheduled = int(pc.sum(lag.column("count")).as_py() or 0) + int(pc.sum(lag.column("failures")).as_py() or 0)
        self.writer.add(list(rows_from_table(table)))
        return scheduled

    def flush(self, now_s: float | None = None) -> None:
        """Master: move this process's own histograms to the writer, write the seconds no report can change."""
        if self.writer is None:
            return
        now_s = time.time() if now_s is None else now_s
        rows = self.histograms.take()
        if rows:
            self._keep_recent([rows_to_batch(rows)])
        self.writer.add(rows)
        self.writer.flush(now_s)

    def _keep_recent(self, batches: list[pa.RecordBatch]) -> None:
        self._recent.extend(b for b in batches if b is not None and b.num_rows)
        horizon = time.time() - RECENT_HDR_S
        while self._recent and pc.max(self._recent[0].column("interval_s")).as_py() < horizon:
            self._recent.popleft()

    def recent(self, since_s: float) -> pa.Table | None:
        """Master: the histogram rows (``harness.timing.hdr.HDR_SCHEMA``, sorted by interval) of the seconds from epoch
        ``since_s`` on, as merged so far (a worker's rows arrive with its report, every 3 s); None when none is
        held. Bounded to the last RECENT_HDR_S seconds. The live probes read it when the request log is not
        complete."""
        first = int(since_s)
        batches = [b for b in self._recent if pc.max(b.column("interval_s")).as_py() >= first]
        if not batches:
            return None
        table = pa.Table.from_batches(batches)
        table = table.filter(pc.greater_equal(table.column("interval_s"), first))
        return table.take(pc.sort_indices(table, sort_keys=[("interval_s", "ascending")]))

    def close(self) -> None:
        """Master: write everything still held (idempotent)."""
        if self.writer is not None:
            self.writer.add(self.histograms.take())
            self.writer.close()

    def rows(self) -> list[HdrRow]:
        """Take this process's histograms (tests, and a worker that ships them another way)."""
        return self.histograms.take()

    def metadata(self) -> dict[str, Any]:
        """For metadata.json: the request-log policy and its effect, the histograms file, the open model."""
        return {
            "request_log": {
                **self.policy.describe(),
                "rows_seen_here": self.rows_seen,
                "rows_kept_here": self.rows_kept,
            },
            "latency_histograms": {"file": HDR_FILE, "rows": self.writer.rows_written if self.writer else 0},
            "open_model": self.open_model or None,
        }


def latency_side(environment: Any) -> LatencySide | None:
    """The process's LatencySide, set on the Locust environment by the harness (None outside it)."""
    return getattr(environment, "featureload_latency", None)
