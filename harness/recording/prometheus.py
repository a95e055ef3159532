"""Prometheus as a source: the service's own metrics, as a Prometheus server scraped them, over a run's window.

``--prometheus URL`` names a Prometheus that scrapes the service; ``--prometheus-query NAME=PROMQL`` (repeatable)
adds a query, or replaces the default query of the same NAME (``DEFAULT_QUERIES``: the service's request rate,
its server-side p50/p95/p99 from its duration histogram, its process CPU and RSS). At the end of a run (and every
few seconds of a web UI run, ``harness.locust_side.run``) each query is evaluated over the run's window through
``/api/v1/query_range``, step = ``--sample-interval`` (1 s when the sampler is off), and written, rewritten whole
and atomically, to ``prometheus.arrows`` in the run directory (an Arrow IPC stream, ``PROMETHEUS_SCHEMA``)::

    ts_s    float64  epoch seconds of the evaluation step
    name    string   the query's NAME
    labels  string   the series' labels as a JSON object (sorted keys; {} for an aggregate)
    value   float64  the value at that step (NaN where Prometheus said NaN)

A PROMQL may use ``$window``, the rate window: 4 steps, at least 4 s (a rate needs two scrapes inside it).

Bounded: at most MAX_QUERIES queries, MAX_SERIES series per query (further series are dropped, and a note says
so), MAX_RESPONSE_BYTES per answer, MAX_STEPS steps per series (a longer window gets a coarser step, and a note).

A Prometheus that cannot be reached, or answers with an error, never fails the run: ``PullResult.error`` holds
one line naming the query and the cause, which metadata.json, the log and the report show. The URL's credentials
are masked wherever it is recorded (``harness.recording.redact``).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import requests

from harness.recording.redact import redact_text, redact_url

__all__ = [
    "DEFAULT_QUERIES", "FILE_NAME", "MAX_QUERIES", "MAX_RESPONSE_BYTES", "MAX_SERIES", "MAX_STEPS",
    "PROMETHEUS_SCHEMA", "PrometheusClient", "PrometheusRecorder", "PrometheusSource", "PullResult", "check_url",
    "parse_query", "source_from_options", "write_table",
]  # fmt: skip

FILE_NAME = "prometheus.arrows"
PROMETHEUS_SCHEMA = pa.schema(
    [("ts_s", pa.float64()), ("name", pa.string()), ("labels", pa.string()), ("value", pa.float64())]
)
MAX_QUERIES = 32
MAX_SERIES = 50
MAX_RESPONSE_BYTES = 16 * 2**20
MAX_STEPS = 11_000  # Prometheus' own limit of points per series in a range query
HTTP_TIMEOUT_S = 10.0
SCRAPE_WAIT_S = 20.0  # the final pull waits at most this long for a scrape newer than the run's end
SCRAPE_SETTLE_S = 0.25  # ... newer by this much: a request cut off at the stop is counted once the server ends it
LIVE_PULL_S = 5.0  # a web UI run's prometheus.arrows is refreshed this often (slower when a pull takes long)
# Any featurestore service exports this counter from its start (no labels): its newest sample says when
# Prometheus last scraped the service.
FRESHNESS_QUERY = "min(timestamp(featurestore_cache_hits_total))"
_ANCHOR = "on(job, instance) featurestore_cache_hits_total"  # keeps the service's own process series
DEFAULT_QUERIES: dict[str, str] = {
    "request_rate_per_s": 'sum(rate(featurestore_requests_total{route!="/metrics"}[$window]))',
    **{
        f"server_p{q}_ms": f"1000 * histogram_quantile(0.{q}, sum by (le) "
        f'(rate(featurestore_request_duration_seconds_bucket{{route!="/metrics"}}[$window])))'
        for q in (50, 95, 99)
    },
    "cpu_percent": f"100 * rate(process_cpu_seconds_total[$window]) and {_ANCHOR}",
    "rss_bytes": f"process_resident_memory_bytes and {_ANCHOR}",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def check_url(url: str) -> str:
    """``url`` without a trailing slash; raises ValueError (one line, credentials masked) unless http(s)://host."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as error:
        raise ValueError(f"--prometheus {shown!r} is not a URL ({error}): e.g. http://127.0.0.1:9090") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"--prometheus {shown!r} is not an http:// or https:// URL with a host: "
                         "e.g. http://127.0.0.1:9090")  # fmt: skip
    return url.rstrip("/")


def parse_query(text: str) -> tuple[str, str]:
    """``NAME=PROMQL`` as (name, promql); raises ValueError (one line) for another form."""
    name, equals, promql = text.partition("=")
    name, promql = name.strip(), promql.strip()
    if not equals or not promql:
        raise ValueError(f"--prometheus-query {text!r} is not NAME=PROMQL: e.g. "
                         "'errors_per_s=sum(rate(featurestore_requests_total{status=~\"5..\"}[$window]))'")  # fmt: skip
    if not _NAME.fullmatch(name):
        raise ValueError(f"--prometheus-query {text!r}: the name {name!r} is invalid: use [A-Za-z_][A-Za-z0-9_]*, "
                         "1-64 chars")  # fmt: skip
    return name, promql


@dataclass(frozen=True)
class PrometheusSource:
    """Where to pull from and what: ``url`` (credentials included: never record it, see ``shown_url``), the
    queries by name, and the step in seconds."""

    url: str
    queries: dict[str, str]
    step_s: float

    @property
    def shown_url(self) -> str:
        """The URL as it may be recorded: its password masked."""
        return redact_url(self.url)

    def metadata(self) -> dict[str, Any]:
        """What metadata.json records of the source (no credentials)."""
        return {"url": self.shown_url, "queries": dict(self.queries), "step_s": self.step_s}


def source_from_options(options: Any) -> PrometheusSource | None:
    """The source ``--prometheus`` / ``--prometheus-query`` / ``--sample-interval`` describe (None without
    ``--prometheus``). A value may hold several queries, one per line (an environment variable's). Raises
    ValueError, one line naming the option, for a bad value."""
    url = (getattr(options, "prometheus", None) or "").strip()
    texts = [line for value in getattr(options, "prometheus_query", None) or [] for line in str(value).splitlines()]
    texts = [t for t in texts if t.strip()]
    if not url:
        if texts:
            raise ValueError("--prometheus-query needs --prometheus URL: the Prometheus server to ask")
        return None
    queries = dict(DEFAULT_QUERIES)
    for text in texts:
        name, promql = parse_query(text)
        queries[name] = promql
    if len(queries) > MAX_QUERIES:
        raise ValueError(f"--prometheus-query: {len(queries)} queries (with the defaults), at most {MAX_QUERIES}")
    interval = float(getattr(options, "sample_interval", 0) or 0)
    return PrometheusSource(check_url(url), queries, interval if interval > 0 else 1.0)


@dataclass
class PullResult:
    """One pull: the rows (PROMETHEUS_SCHEMA), the window and step asked, the first error (one line, None when
    every query answered), notes (series dropped, a coarser step, a scrape older than the window's end)."""

    table: pa.Table
    start_s: float
    end_s: float
    step_s: float
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    series: dict[str, int] = field(default_factory=dict)  # query name -> series kept

    def metadata(self) -> dict[str, Any]:
        return {"window": [self.start_s, self.end_s], "step_used_s": self.step_s, "error": self.error,
                "notes": list(self.notes), "series": dict(self.series), "rows": self.table.num_rows}  # fmt: skip


class PrometheusError(Exception):
    """One query could not be answered; the message is one line. ``unreachable``: no answer at all (the next
    query would fare no better)."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class PrometheusClient:
    """The HTTP side: instant and range queries against ``source.url`` (requests; answers capped in size)."""

    def __init__(self, source: PrometheusSource, session: requests.Session | None = None) -> None:
        self.source = source
        self.http = session or requests.Session()

    def _get(self, path: str, params: dict[str, str]) -> Any:
        """The ``data`` of a successful answer; raises PrometheusError with one line."""
        where = f"Prometheus at {self.source.shown_url}"
        try:
            with self.http.get(self.source.url + path, params=params, timeout=HTTP_TIMEOUT_S, stream=True) as answer:
                body = bytearray()
                for chunk in answer.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise PrometheusError(f"{where} answered more than {MAX_RESPONSE_BYTES:,} bytes")
                status = answer.status_code
        except requests.RequestException as error:
            raise PrometheusError(f"{where} unreachable: {_cause(error)}", unreachable=True) from None
        try:
            content = json.loads(body)
        except ValueError:
            raise PrometheusError(f"{where} answered HTTP {status} without JSON (is it Prometheus?)") from None
        if not isinstance(content, dict) or content.get("status") != "success":
            detail = content.get("error") if isinstance(content, dict) else None
            raise PrometheusError(f"{where} answered HTTP {status}: {detail or 'no success status'}")
        return content.get("data") or {}

    def newest_scrape_s(self) -> float | None:
        """Epoch seconds of the newest sample of the service (FRESHNESS_QUERY), None if there is none."""
        data = self._get("/api/v1/query", {"query": FRESHNESS_QUERY})
        result = data.get("result") if isinstance(data, dict) else None
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None

    def wait_for_scrape_after(self, t_s: float, timeout_s: float, poll_s: float = 0.25) -> tuple[float | None, str]:
        """Poll until Prometheus holds a sample of the service newer than epoch second ``t_s``, for at most
        ``timeout_s``: (its time or the newest seen, '' or why not)."""
        deadline = time.monotonic() + timeout_s
        newest: float | None = None
        while True:
            try:
                newest = self.newest_scrape_s()
            except PrometheusError as error:
                return None, str(error)
            if newest is not None and newest > t_s:
                return newest, ""
            if time.monotonic() >= deadline:
                seen = "no sample of the service" if newest is None else f"its newest sample {t_s - newest:.1f} s older"
                return newest, f"no scrape of the service after the run's end within {timeout_s:g} s ({seen})"
            time.sleep(poll_s)  # gevent's under Locust: the hub runs meanwhile

    def pull(self, start_s: float, end_s: float) -> PullResult:
        """Every query over [start_s, end_s] (epoch seconds) on the source's step grid; never raises."""
        step_s = self.source.step_s
        notes = []
        if (end_s - start_s) / step_s >= MAX_STEPS:
            step_s = math.ceil((end_s - start_s) / (MAX_STEPS - 1))
            notes.append(f"step {step_s:g} s, not {self.source.step_s:g} s: at most {MAX_STEPS} points per series")
        end_s = max(end_s, start_s)
        window = f"{max(4.0, 4 * step_s):g}s"
        columns: tuple[list[Any], ...] = ([], [], [], [])
        result = PullResult(table=_table(columns), start_s=start_s, end_s=end_s, step_s=step_s, notes=notes)
        for name, promql in self.source.queries.items():
            params = {"query": promql.replace("$window", window), "start": f"{start_s:.3f}", "end": f"{end_s:.3f}",
                      "step": f"{step_s:g}"}  # fmt: skip
            try:
                data = self._get("/api/v1/query_range", params)
            except PrometheusError as error:
                if result.error is None:
                    result.error = f"query {name}: {error}"
                else:  # the first failure is the one line; the others are notes
                    notes.append(redact_text(f"query {name}: {error}"))
                if error.unreachable:  # each further query would wait for its own timeout
                    break
                continue
            series = data.get("result") if isinstance(data, dict) else None
            if not isinstance(series, list):
                result.error = result.error or f"query {name}: Prometheus answered no series list"
                continue
            if len(series) > MAX_SERIES:
                notes.append(f"query {name}: {len(series)} series, the first {MAX_SERIES} kept")
                series = series[:MAX_SERIES]
            result.series[name] = len(series)
            _append(columns, name, series)
        result.table = _table(columns)
        if result.error:
            result.error = redact_text(result.error)
        return result


def _cause(error: requests.RequestException) -> str:
    """The reason of a requests error in a few words (e.g. 'Connection refused'), one line."""
    if isinstance(error, requests.Timeout):
        return f"no answer within {HTTP_TIMEOUT_S:g} s"
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)  # urllib3 buries the socket's error in its message
    text = errno.group(1) if errno else f"{type(error).__name__}: {text}"
    return " ".join(redact_text(text).split())[:200]


def _append(columns: tuple[list[Any], ...], name: str, series: Iterable[Any]) -> None:
    ts, names, labels, values = columns
    for one in series:
        metric = one.get("metric") or {}
        text = json.dumps(metric, sort_keys=True)
        for stamp, value in one.get("values") or []:
            ts.append(float(stamp))
            names.append(name)
            labels.append(text)
            values.append(float(value))  # "NaN", "+Inf" parse as floats


def _table(columns: Sequence[list[Any]]) -> pa.Table:
    return pa.table([pa.array(c, type=f.type) for c, f in zip(columns, PROMETHEUS_SCHEMA, strict=True)],
                    schema=PROMETHEUS_SCHEMA)  # fmt: skip


def write_table(path: Path, table: pa.Table) -> None:
    """Write ``table`` as an Arrow IPC stream at ``path`` atomically (temp file, rename): a reader (the web UI,
    the report) never sees half a file."""
    temp = path.with_name(f".{path.name}.tmp")
    try:
        with pa.OSFile(str(temp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)
        raise


class PrometheusRecorder:
    """A run's prometheus.arrows: ``live`` pulls while the run goes on, ``final`` once it stopped (after the
    service's next scrape), each rewriting the file whole; ``metadata`` is what metadata.json records."""

    def __init__(self, source: PrometheusSource, run_dir: Path, client: PrometheusClient | None = None) -> None:
        self.source = source
        self.path = run_dir / FILE_NAME
        self.client = client or PrometheusClient(source)
        self.last: PullResult | None = None

    def live(self, started_s: float) -> PullResult:
        """Pull the run so far (from one step before ``started_s``, epoch seconds); raises OSError if the file
        cannot be written. A failed pull keeps the rows of the last good one."""
        result = self.client.pull(started_s - self.source.step_s, time.time())
        if result.error is None or self.last is None:
            write_table(self.path, result.table)
        self.last = result
        return result

    def final(self, started_s: float, stopped_s: float) -> PullResult:
        """Wait (SCRAPE_WAIT_S at most) until Prometheus scraped the service after ``stopped_s``, then pull the
        window from one step before ``started_s`` (so a counter's increase over the run is its last value minus
        its first) to the step grid's first point after that scrape. Raises OSError if the file cannot be
        written; an unreachable Prometheus is ``error`` in the result."""
        step_s = self.source.step_s
        newest, why = self.client.wait_for_scrape_after(stopped_s + SCRAPE_SETTLE_S, SCRAPE_WAIT_S)
        first_s = started_s - step_s
        end_s = max(stopped_s, newest or stopped_s)
        result = self.client.pull(first_s, first_s + math.ceil((end_s - first_s) / step_s) * step_s)
        if why and result.error is None:
            result.notes.append(why)  # the window's end may miss the last requests: said, not hidden
        write_table(self.path, result.table)
        self.last = result
        return result

    def metadata(self) -> dict[str, Any]:
        """The source (URL without credentials, queries, step) and the last pull (window, error, notes)."""
        pulled = self.last.metadata() if self.last is not None else {"error": "not pulled: the run ended first"}
        return {**self.source.metadata(), "file": FILE_NAME, **pulled}
