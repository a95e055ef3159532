"""One run, test_start to test_stop, seen from the master (or the only) Locust process: everything its run
directory receives (harness.recording.rundir lists the files).

A headless process makes one run; a web UI session makes one per Start ... Stop (or shape end), each with its
own directory, request log, Locust CSVs, sampler (started with the run, stopped with it), thresholds verdict,
metadata and report. What lives across runs (the embedded service, the redactor, the profile chosen) belongs to
``harness.locust_side.session.Session``, which hands it in.

``finish()`` writes everything once the run has stopped; ``build_report()`` then builds report.html (in this
process, or in a child process when the web UI must stay responsive, ``in_child=True``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import pyarrow as pa
from locust.env import Environment
from locust.html import get_html_report
from locust.runners import STATE_MISSING, MasterRunner, Runner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter

from harness.locust_side.progress import EXIT_CODE_MEANINGS, end_lines
from harness.locust_side.runcontrol import INTERRUPTING, signal_exit_code
from harness.locust_side.worker import REPORT_KEY, SAMPLES_KEY
from harness.recording.prometheus import LIVE_PULL_S, PrometheusRecorder, PrometheusSource
from harness.recording.recorder import REQUEST_SCHEMA, ArrowStreamWriter, RequestRecorder, batch_from_bytes, read_stream
from harness.recording.redact import Redactor, redact_url
from harness.recording.rundir import RunDirectory, collect_environment
from harness.report import ReportResult, build_report
from harness.report.stress import stress_line
from harness.sampling.monitoring import (
    HubProcess,
    SamplerProcess,
    merge_agent_rows,
    merge_worker_samples,
    open_worker_samples,
)
from harness.sampling.readers import LOCAL_HOST, local_rows
from harness.sampling.worker_clock import WorkerClocks
from harness.target.embedded import EmbeddedService, fetch_cache_stats
from harness.target.faults import describe_faults, fetch_service_faults
from harness.timing.arrivals import RateController
from harness.timing.hdr import HDR_FILE
from harness.timing.latency import LatencySide
from harness.verdict.hdr_thresholds import evaluate_hdr, evaluate_run
from harness.verdict.thresholds import RESOURCE_METRICS, THRESHOLD_EXIT_CODE, Threshold, Verdict, evaluate
from profiles.model import Profile

__all__ = ["RECORD_EXIT_CODE", "RunContext", "RunSetup"]

logger = logging.getLogger("featureload")

FLUSH_INTERVAL_S = 1.0  # the latency histograms are flushed this often
REQUEST_FLUSH_S = 0.2  # the request log this often: small slices, so the open model's scheduler is never held long
RECENT_WINDOW_S = 300.0
SERVICE_POLL_S = 0.5  # how often the embedded service's liveness is checked
RECORD_EXIT_CODE = 2  # a run whose files (its verdict) could not be written: never a pass
REPORT_TIMEOUT_S = 300.0  # a web UI run's report child is killed after this long


@dataclass
class RunSetup:
    """What a run receives from the session: the parts that live across runs."""

    redactor: Redactor
    runs_dir: Path
    scenario: str
    profile: Profile | None
    thresholds: list[Threshold]
    embedded: EmbeddedService | None = None
    external_catalog: dict[str, Any] | None = None
    service_log: Path | None = None  # the embedded service's log, of which the run keeps its own part
    prometheus: PrometheusSource | None = None  # --prometheus: pulled into prometheus.arrows
    live_prometheus: bool = False  # pulled every LIVE_PULL_S too (the web UI shows it as the run goes)
    worker_clocks: WorkerClocks | None = None  # a master's estimate of its workers' hosts' clocks


class RunContext:
    """One run: its directory, request log, CSV writer, sampler, verdict, metadata and report."""

    def __init__(self, environment: Environment, runner: Runner, setup: RunSetup, recorder: RequestRecorder) -> None:
        self.environment = environment
        self.runner = runner
        self.setup = setup
        self.redactor = setup.redactor
        self.profile = setup.profile
        self.thresholds = setup.thresholds
        self.recorder = recorder
        self.embedded = setup.embedded
        self.created_at = datetime.now(UTC)
        self.test_started_s: float | None = None
        self.test_stopped_s: float | None = None
        self.run_dir = RunDirectory(setup.runs_dir, setup.scenario, redactor=self.redactor)
        self.requests = ArrowStreamWriter(self.run_dir.file("requests.arrows"), REQUEST_SCHEMA, RECENT_WINDOW_S)
        options = environment.parsed_options
        self.latency = LatencySide.for_run_dir(self.run_dir.path, lambda: options.request_log)  # harness.timing.latency
        environment.featureload_latency = self.latency  # type: ignore[attr-defined]
        self.rates = RateController(environment, runner, self.latency)  # the open model (harness.timing.arrivals)
        self.workers: dict[str, dict[str, Any]] = {}
        self.verdict: Verdict | None = None
        self.stop_reason: str | None = None
        self.run_time_cap_s: float | None = None
        self.exit_code: int | None = None
        self.finished = False
        self.report: ReportResult | None = None
        self.report_summary: dict[str, Any] | None = None  # summary.json's content, once the report is built
        self.sampler: SamplerProcess | None = None
        self.worker_samples: ArrowStreamWriter | None = None
        self.hub: HubProcess | None = None
        self.agents: list[dict[str, Any]] = []  # agents.json's, once the hub stopped
        self.service_exit: dict[str, Any] | None = None
        self.service_faults: dict[str, Any] | None = None  # GET /health's "faults" at the start (None: unknown)
        self.record_error: str | None = None  # the first write into the run directory that failed, and why
        self.prometheus = PrometheusRecorder(setup.prometheus, self.run_dir.path) if setup.prometheus else None
        self._greenlets: list[gevent.Greenlet] = []
        self._csv: StatsCSVFileWriter | None = None
        self._log_offset = 0
        self._locust_totals: dict[str, int] = {}
        self._locust_errors = False
        self._shape_result: dict[str, Any] | None = None
        if setup.service_log is not None and setup.service_log.parent != self.run_dir.path:
            with contextlib.suppress(OSError):
                self._log_offset = setup.service_log.stat().st_size

    # ---- start ----------------------------------------------------------------------------------------------

    def start(self, sample_interval_s: float, service_pid: int | None, service_match: str) -> None:
        """Start the run's writers, watchers and sampler."""
        try:
            self._csv = StatsCSVFileWriter(
                self.environment, PERCENTILES_TO_REPORT, str(self.run_dir.file("locust")), full_history=True
            )
        except OSError as error:
            self._cannot_record(error)
        self._greenlets = [gevent.spawn(self._flush_loop)]
        if self._csv is not None:
            self._greenlets.append(gevent.spawn(self._recording, self._csv.stats_writer))
        if self.embedded is not None:
            self._greenlets.append(gevent.spawn(self._watch_service))
        if isinstance(self.runner, MasterRunner):
            self._greenlets.append(gevent.spawn(self._watch_workers))
            self.worker_samples = open_worker_samples(self.run_dir.path)
        if sample_interval_s > 0:
            self._start_sampler(sample_interval_s, service_pid, service_match)
        if self.prometheus is not None and self.setup.live_prometheus:
            self._greenlets.append(gevent.spawn(self._pull_prometheus_live))
        if bind := getattr(self.environment.parsed_options, "agents_bind", ""):  # agents on other hosts
            self.hub = HubProcess(self.run_dir.path, bind)
        self._ask_service_faults()
        logger.info("run directory: %s; host under test: %s", self.run_dir.path, redact_url(self.environment.host))

    def _ask_service_faults(self) -> None:
        """Ask the service which faults it injects (``GET /health``), so that metadata.json and the report say
        so: an injected run must never pass for a real one. None when the service could not say."""
        options = self.environment.parsed_options
        host = self.environment.host
        token = options.read_token or options.write_token
        self.service_faults = fetch_service_faults(host, token=token, timeout_s=3.0) if host else None
        if self.service_faults is None:
            logger.warning("the service at %s did not say which faults it injects (GET /health): metadata.json "
                           "records service_faults: null", redact_url(host or ""))  # fmt: skip
        elif banner := describe_faults(self.service_faults):
            logger.warning("%s", banner.upper())

    def _start_sampler(self, interval_s: float, service_pid: int | None, service_match: str) -> None:
        # The service first: the sampler gives a pid the role of the first target that claims it, and the
        # embedded service is also a child of this (generator) process.
        targets: dict[str, list[int]] = {}
        if self.embedded is not None:
            targets["service"] = [self.embedded.process.pid]
        elif service_pid:
            targets["service"] = [service_pid]
        matches = {"service": service_match} if service_match else {}
        targets["generator"] = [os.getpid()]
        if "service" not in targets and not matches:
            logger.warning("the service runs elsewhere: only the load generators and this host are sampled "
                           "(--service-pid or --service-match select a local service)")  # fmt: skip
        self.sampler = SamplerProcess(self.run_dir.path, targets, interval_s, matches)

    def _flush_loop(self) -> None:
        # Each step yields to the hub before the next: the open model's scheduler greenlet runs between them (one
        # long flush a second showed as a stall of the arrivals' schedule).
        histograms_due = 0.0
        while True:
            if not self._recording(self.requests.write, self.recorder.drain()):
                return
            if (now := time.monotonic()) >= histograms_due:
                histograms_due = now + FLUSH_INTERVAL_S
                gevent.sleep(0)
                if not self._recording(self.latency.flush):
                    return
            gevent.sleep(REQUEST_FLUSH_S)

    def _recording(self, write: Callable[..., Any], *args: Any) -> bool:
        """Run ``write(*args)``; an OSError (the disk full, the directory gone) makes the run unrecordable
        (``record_error``) instead of escaping: returns whether it succeeded."""
        try:
            write(*args)
        except OSError as error:
            self._cannot_record(error)
            return False
        return True

    def _cannot_record(self, error: OSError) -> None:
        """The first failure to write the run directory: said once, in one line; the run's exit code becomes
        RECORD_EXIT_CODE whatever its thresholds say (a run without its verdict on disk is never a pass)."""
        if self.record_error is not None:
            return
        cause = error.strerror or str(error) or type(error).__name__
        where = f" ({error.filename})" if error.filename else ""
        self.record_error = f"{cause}{where}"
        logger.error("the run cannot be recorded in %s: %s; free space on --runs-dir or give another (exit code "
                     "%d)", self.run_dir.path, self.record_error, RECORD_EXIT_CODE)  # fmt: skip

    def _pull_prometheus_live(self) -> None:
        """Refresh prometheus.arrows while the run goes on; a slow Prometheus is asked less often."""
        assert self.prometheus is not None
        while True:
            pause_s = LIVE_PULL_S
            if self.test_started_s is not None:
                began = time.monotonic()
                if not self._recording(self.prometheus.live, self.test_started_s):
                    return
                pause_s = max(pause_s, 20 * (time.monotonic() - began))
            gevent.sleep(pause_s)

    def _pull_prometheus_final(self, ended_s: float) -> None:
        """The run's window from Prometheus, once it scraped the service after the stop. Never changes the exit
        code: a failure is one line in the log, metadata.json and the report."""
        if self.prometheus is None:
            return
        started_s = self.test_started_s or self.created_at.timestamp()
        result = self.prometheus.final(started_s, self.test_stopped_s or ended_s)
        if result.error:
            logger.warning("Prometheus: %s (the run's exit code is unchanged)", result.error)
        for note in result.notes:
            logger.info("Prometheus: %s", note)

    def flush(self) -> None:
        """Write the requests recorded so far into the request log (and the latency histograms)."""
        self.requests.write(self.recorder.drain())
        self.latency.flush()

    def _watch_service(self) -> None:
        """Notice the embedded service dying mid-run: record when and how, and take its workers down with it."""
        assert self.embedded is not None
        process = self.embedded.process
        while process.returncode is None:
            gevent.sleep(SERVICE_POLL_S)
        now = time.time()
        code = process.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        self.service_exit = {"returncode": code, "how": how, "at": datetime.fromtimestamp(now, UTC).isoformat(),
                             "at_s": now}  # fmt: skip
        with contextlib.suppress(OSError):  # its workers die with it (parent-death signal); this makes it certain
            os.killpg(process.pid, signal.SIGKILL)
        logger.error(
            "the embedded service (pid %d) ended during the run (%s): requests fail from now on; its log: %s",
            process.pid, how, self.run_dir.file("service.log"),
        )  # fmt: skip

    def _watch_workers(self) -> None:
        assert isinstance(self.runner, MasterRunner)
        while True:
            now = time.time()
            for client in list(self.runner.clients.values()):
                seen = self.workers.setdefault(client.id, {"first_seen_s": now, "lost_at_s": None})
                seen["state"] = client.state
                if client.state == STATE_MISSING and seen["lost_at_s"] is None:
                    seen["lost_at_s"] = now
                    logger.warning("worker %s went missing; the run goes on without it", client.id)
                elif client.state != STATE_MISSING:
                    seen["last_seen_s"] = now
            gevent.sleep(1.0)

    # ---- live probes (the stress profile, the web UI's tab) --------------------------------------------------

    def log_complete(self) -> bool:
        """Whether the request log holds every request so far: ``--request-log full``, or ``auto`` before it
        switched to sampling (as many rows as Locust counted requests). Call after ``flush``."""
        mode = self.latency.policy.mode
        if mode == "full":
            return True
        return mode == "auto" and self.requests.rows >= self.environment.stats.total.num_requests

    def breach_check(self, window_s: float = 15.0) -> str | None:
        """The first request threshold failing over the last ``window_s`` seconds, or None: judged on the
        request log when it holds every request, else on the HDR histograms (which count every request)."""
        self.flush()
        since_s = time.time() - window_s
        checks = [t for t in self.thresholds if t.metric not in RESOURCE_METRICS]
        if not checks:
            return None
        if self.log_complete():
            recent = self.requests.recent(since_s)
            if recent.num_rows == 0:
                return None
            results = evaluate(checks, recent, duration_s=window_s, start_s=since_s).results
        else:
            table = self.latency.recent(since_s)
            if table is None or not self._hdr_requests(table):
                return None
            results = [evaluate_hdr(t, table, window_s, since_s) for t in checks]
        failed = [r for r in results if r.status == "fail"]
        return failed[0].line() if failed else None

    def recent_rps(self, window_s: float = 15.0) -> float:
        """Requests per second over the last ``window_s`` seconds (the request log's rows when it holds every
        request, else the HDR histograms' counts)."""
        self.flush()
        since_s = time.time() - window_s
        if self.log_complete():
            return self.requests.recent(since_s).num_rows / window_s
        table = self.latency.recent(since_s)
        return (self._hdr_requests(table) if table is not None else 0) / window_s

    @staticmethod
    def _hdr_requests(table: Any) -> int:
        """Requests counted by the "response" rows of an HDR table."""
        kinds, counts = table.column("kind").to_pylist(), table.column("count").to_pylist()
        return sum(c for k, c in zip(kinds, counts, strict=True) if k == "response")

    def on_worker_report(self, data: dict[str, Any], client_id: str | None = None) -> None:
        """Write the requests and samples a worker shipped inside its Locust report (and count the arrivals it
        scheduled, for the open model's ledger)."""
        if self.finished:
            return
        scheduled = self.latency.on_worker_report(data)
        if client_id is not None:
            self.rates.count_scheduled(client_id, scheduled)
        payload = data.get(REPORT_KEY)
        if payload:
            for batch in batch_from_bytes(payload).to_batches():
                self.requests.write(batch)
        samples = data.get(SAMPLES_KEY)
        if samples and self.worker_samples is not None:
            table = batch_from_bytes(samples)
            clocks = self.setup.worker_clocks
            host = clocks.host_of(client_id) if clocks is not None else LOCAL_HOST
            if host != LOCAL_HOST and "host" in table.column_names:  # a worker on another host: its rows say so
                table = table.set_column(table.schema.get_field_index("host"), "host",
                                         pa.repeat(pa.scalar(host, pa.string()), table.num_rows))  # fmt: skip
            for batch in table.to_batches():
                self.worker_samples.write(batch)

    # ---- finish ---------------------------------------------------------------------------------------------

    @property
    def interrupted(self) -> bool:
        return self.stop_reason in INTERRUPTING

    def finish(self) -> None:
        """Write everything the run directory promises but the report (idempotent). Call once the run stopped:
        the request log, Locust's CSVs and its totals then count the same requests. What Locust's statistics
        say is written first, before anything yields: a next web UI run clears them when it starts.

        A write that fails (``record_error``: the disk is full) ends the run with RECORD_EXIT_CODE, its verdict
        neither written nor printed, no temporary file left; what the run started is stopped all the same."""
        if self.finished:
            return
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._recording(self.flush)
        self.finished = True
        self._recording(self.requests.close)
        self.rates.stop()
        self.rates.summarize()  # the workers' last reports are in: each lost worker's share
        self._recording(self.latency.close)
        ended_s = time.time()
        self._recording(self._write_final_csvs)
        self._recording(self._write_locust_report)
        total = self.environment.stats.total
        self._locust_totals = {"requests": total.num_requests, "failures": total.num_failures}
        self._locust_errors = bool(self.runner.errors or self.runner.exceptions)
        shape = self.environment.shape_class
        self._shape_result = shape.result() if shape is not None and hasattr(shape, "result") else None
        self._recording(self._save_cache_stats)
        if self.sampler is not None:
            self.sampler.stop()
        self._recording(self._pull_prometheus_final, ended_s)
        if self.worker_samples is not None:
            self._recording(self.worker_samples.close)
            offsets = self.setup.worker_clocks.offsets_s() if self.setup.worker_clocks is not None else {}
            self._recording(merge_worker_samples, self.run_dir.path, offsets)
        if self.hub is not None:
            if (code := self.hub.stop()) not in (0, None):  # it could not listen (the port taken), or crashed
                logger.error("the agents' hub ended with exit status %s: no agent rows in this run; see %s", code,
                             self.run_dir.file("hub.log"))  # fmt: skip
            self._recording(self._merge_agents)
        self._recording(self._copy_service_log)
        if self.record_error is None:
            self._recording(self._judge, ended_s)
        if self.record_error is not None:
            self.exit_code = RECORD_EXIT_CODE
            self.run_dir.discard_temporary_files()

    def _merge_agents(self) -> None:
        """The agents' rows, on this clock, into samples/host/gpu.arrows; rows from before the run (an agent's
        backlog from an earlier one) are left out."""
        self.agents = merge_agent_rows(self.run_dir.path, since_s=self.created_at.timestamp())
        for agent in self.agents:
            for window in agent.get("lost") or []:
                logger.warning("agent %s was lost from %s to %s", agent["name"], window["from"],
                               window["to"] or "the end of the run")  # fmt: skip

    def _write_locust_report(self) -> None:
        self.run_dir.file("locust_report.html").write_text(
            self.redactor.text(get_html_report(self.environment, show_download_link=False)), encoding="utf-8"
        )

    def _judge(self, ended_s: float) -> None:
        """The thresholds' verdict, thresholds.json, the run's exit code and metadata.json."""
        requests = read_stream(self.requests.path)
        started_s = self.test_started_s or self.created_at.timestamp()
        duration_s = max((self.test_stopped_s or ended_s) - started_s, 1e-3)
        if self.thresholds:
            samples_path = self.run_dir.file("samples.arrows")
            samples = local_rows(read_stream(samples_path)) if samples_path.exists() else None
            self.verdict = evaluate_run(
                self.thresholds, requests, duration_s, samples, start_s=started_s, hdr_path=self.run_dir.file(HDR_FILE)
            )  # percentiles from the HDR
        judged: dict[str, Any] = {"evaluated": bool(self.thresholds)}
        judged.update(self.verdict.to_dict() if self.verdict else {"passed": True})
        if self.thresholds and self._locust_totals["requests"] == 0:  # nothing measured is never a pass
            judged.update(passed=False, note="the run recorded no request: no threshold could be measured")
        self.run_dir.write_json("thresholds.json", judged)
        self.exit_code = self._decide_exit_code(judged)
        self.run_dir.write_json("metadata.json", self._metadata(started_s, ended_s, duration_s, requests.num_rows))

    def _decide_exit_code(self, judged: dict[str, Any]) -> int:
        """The run's code: 128 + signal when interrupted, THRESHOLD_EXIT_CODE when a threshold failed (or none
        could be measured), else Locust's own rule (errors: --exit-code-on-error)."""
        code = signal_exit_code(self.stop_reason)
        if code is not None:
            return code
        if judged["evaluated"] and not judged["passed"]:
            return THRESHOLD_EXIT_CODE
        if self._locust_errors:
            return int(self.environment.parsed_options.exit_code_on_error)
        return 0

    def build_report(self, in_child: bool = False) -> None:
        """Build report.html, summary.json and summary.md; ``in_child`` builds them in a child process (this
        process only waits, cooperatively), so a web UI stays responsive. A failure is logged, not raised: the
        run's data is on disk and ``python -m harness report`` can retry. A run that could not be recorded has
        no report."""
        if self.record_error is not None:
            return
        if in_child:
            argv = [sys.executable, "-m", "harness", "report", str(self.run_dir.path)]
            try:
                done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=REPORT_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # the child is killed; the verdict is still printed
                logger.error("the combined report could not be built: not done after %g s; retry with python -m "
                             "harness report %s", REPORT_TIMEOUT_S, self.run_dir.path)  # fmt: skip
                return
            except OSError as error:
                logger.error("the combined report could not be built: %s", error)
                return
            if done.returncode != 0:
                logger.error("the combined report could not be built: %s", done.stderr[-2000:])
                return
            self.report_summary = json.loads(self.run_dir.file("summary.json").read_text(encoding="utf-8"))
            return
        try:
            self.report = build_report(self.run_dir.path)
        except Exception:
            logger.exception("the combined report could not be built")
            return
        self.report_summary = self.report.summary

    def _copy_service_log(self) -> None:
        """The run's part of the embedded service's log (its whole log when the log is its own file)."""
        source = self.setup.service_log
        if source is None or source.parent == self.run_dir.path or not source.exists():
            return
        with open(source, "rb") as src, open(self.run_dir.file("service.log"), "wb") as dst:
            src.seek(self._log_offset)
            shutil.copyfileobj(src, dst)

    def _save_cache_stats(self) -> None:
        options = self.environment.parsed_options
        stats = fetch_cache_stats(self.environment.host, token=options.read_token or options.write_token)
        if stats is not None:
            self.run_dir.write_json("cache_stats.json", stats)

    def _write_final_csvs(self) -> None:
        """Locust's writer refreshes its CSVs once a second; write the final numbers once the test stopped."""
        if self._csv is not None:
            self._csv.close_files()
        final = StatsCSV(self.environment, PERCENTILES_TO_REPORT)
        for suffix, write in (("stats", final.requests_csv), ("failures", final.failures_csv),
                              ("exceptions", final.exceptions_csv)):  # fmt: skip
            buffer = io.StringIO(newline="")
            write(csv.writer(buffer))
            text = self.redactor.text(buffer.getvalue())  # error messages and tracebacks may quote a URL
            with open(self.run_dir.file(f"locust_{suffix}.csv"), "w", newline="", encoding="utf-8") as handle:
                handle.write(text)

    def _metadata(self, started_s: float, ended_s: float, duration_s: float, request_rows: int) -> dict[str, Any]:
        options = self.environment.parsed_options
        embedded = self.embedded
        return {
            "scenario": self.setup.scenario,
            "locustfile": options.locustfile,
            "host": self.environment.host,
            "embedded_service": None
            if embedded is None
            else {
                "pid": embedded.process.pid,
                "store_path": str(embedded.store_path),
                "writes": "closed by the --write-token given"
                if options.write_token and options.write_token != embedded.write_token
                else "closed by a generated token",
                "exit": self.service_exit,
                "workers": options.service_workers,
                "catalog": {k: v for k, v in embedded.catalog.items() if k != "stored"},
            },
            "external_catalog": self.setup.external_catalog,
            "service_faults": self.service_faults,
            "prometheus": self.prometheus.metadata() if self.prometheus is not None else None,
            "profile": None
            if self.profile is None
            else {"name": self.profile.name, "shape": self.profile.shape, "source": str(self.profile.source)},
            "shape_result": self._shape_result,
            "thresholds": [t.text for t in self.thresholds],
            **self.latency.metadata(),  # request_log, latency_histograms, open_model
            "options": {
                "users": options.num_users,
                "spawn_rate": options.spawn_rate,
                "run_time_s": options.run_time,
                "headless": options.headless,
                "master": options.master,
                "expect_workers": getattr(options, "expect_workers", None),
                "exit_code_on_error": options.exit_code_on_error,
            },
            "run_time_cap_s": self.run_time_cap_s,
            "started_from": "command line" if options.headless else "web UI",
            "runner": type(self.runner).__name__,
            "workers": self.workers,
            "workers_lost": sorted(w for w, seen in self.workers.items() if seen.get("lost_at_s")),
            "agents_bind": getattr(options, "agents_bind", "") or None,
            "agents": self.agents,
            "worker_hosts": self.setup.worker_clocks.describe() if self.setup.worker_clocks is not None else {},
            "started_at": datetime.fromtimestamp(started_s, UTC).isoformat(),
            "ended_at": datetime.fromtimestamp(ended_s, UTC).isoformat(),
            "duration_s": round(duration_s, 3),
            "requests_recorded": request_rows,
            "locust_totals": self._locust_totals,
            "interrupted": self.interrupted,
            "stop_reason": self.stop_reason,
            "exit_code": self.exit_code,
            "environment": collect_environment(os.environ, Path.cwd()),
        }

    def record_exit_code(self, code: int) -> None:
        """Correct metadata.json (and the report) if the process exits with another code than foreseen."""
        path = self.run_dir.file("metadata.json")
        if not self.finished or self.record_error is not None or not path.exists():
            return
        metadata = json.loads(path.read_text(encoding="utf-8"))
        if metadata.get("exit_code") == code:
            return
        metadata["exit_code"] = self.exit_code = code
        if not self._recording(self.run_dir.write_json, "metadata.json", metadata):
            self.exit_code = RECORD_EXIT_CODE
            return
        with contextlib.suppress(Exception):
            self.report = build_report(self.run_dir.path)

    def print_verdict(self, exit_code: int | None = None) -> None:
        """How the run ended, one line per failed threshold, the verdict with the exit code (``exit_code``, else
        the run's own), the findings with their suggestions, where the run directory is."""
        out = sys.stderr
        if self.record_error is not None:  # the one line saying why was logged when it happened
            code = RECORD_EXIT_CODE if exit_code is None else exit_code
            print(f"Verdict: NOT RECORDED (exit code {code}: {EXIT_CODE_MEANINGS.get(code, '')})", file=out)
            return
        if (stress := stress_line(self._shape_result)) is not None:
            print(f"\n{stress}", file=out)  # first: the highest load held within the SLO, and what broke next
        if self.interrupted:
            print(f"\nRun INTERRUPTED ({self.stop_reason}): its figures cover part of it", file=out)
        if self.verdict is not None:
            status = "passed" if self.verdict.passed else "FAILED"
            print(f"\nThresholds {status} ({len(self.verdict.results)} checked)", file=out)
            for line in self.verdict.lines():
                print(f"  {line}", file=out)
        if self.thresholds and not self._locust_totals.get("requests"):
            print("Thresholds FAILED: the run recorded no request, nothing was measured", file=out)
        if self.run_time_cap_s is not None and self.stop_reason == "time limit":
            print(f"The profile's shape was cut at -t {self.run_time_cap_s:g} s", file=out)
        summary = self.report_summary or {}
        findings = [SimpleNamespace(severity=f.get("severity"), message=f.get("message"),
                                    suggestion=f.get("suggestion")) for f in summary.get("findings", [])]  # fmt: skip
        verdict = (summary.get("verdict") or {}).get("status")
        code = self.exit_code if exit_code is None else exit_code
        for line in end_lines(verdict, code if code is not None else 0, findings):
            print(line, file=out)
        if self.report_summary is not None:
            print(f"Report: {self.run_dir.file('report.html')}", file=out)
        print(f"Run directory: {self.run_dir.path}", file=out)
