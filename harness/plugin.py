"""Locust event wiring: options, the embedded service, the profile's shape, the request log, the run directory,
and the thresholds verdict. Importing this module (every locustfile does) registers the listeners.

Exit codes: Locust's own (``--exit-code-on-error`` keeps its meaning), plus ``THRESHOLD_EXIT_CODE`` (3) when a
threshold fails or cannot be measured. metadata.json records the code the process exits with.

Secrets (the tokens, the host URL's password, secret-named environment variables) are masked in everything the
run records and logs, by harness.redact's rule.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import io
import json
import logging
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import locust.log
from flask import jsonify, request
from locust import LoadTestShape, events
from locust.env import Environment
from locust.html import get_html_report
from locust.runners import STATE_MISSING, MasterRunner, Runner, WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter

from harness.embedded import EmbeddedService, ensure_catalog, fetch_cache_stats, start_embedded_service
from harness.monitoring import SamplerProcess, merge_worker_samples, open_worker_samples
from harness.options import add_arguments
from harness.recorder import (
    REQUEST_SCHEMA,
    ArrowStreamWriter,
    RequestRecorder,
    batch_from_bytes,
    read_stream,
)
from harness.redact import RedactingFilter, Redactor, redact_url, secrets_in_env
from harness.report import ReportResult, build_report
from harness.rundir import RunDirectory, collect_environment
from harness.thresholds import (
    RESOURCE_METRICS,
    THRESHOLD_EXIT_CODE,
    Threshold,
    Verdict,
    evaluate,
    parse_thresholds,
)
from harness.worker import REPORT_KEY, SAMPLES_KEY, WorkerSide
from profiles.model import Profile, load_profile
from profiles.shapes import shape_from_profile
from service.launcher import ServiceStartError

__all__ = ["THRESHOLD_EXIT_CODE", "RunContext"]

logger = logging.getLogger("featureload")

FLUSH_INTERVAL_S = 1.0
RECENT_WINDOW_S = 300.0
SERVICE_POLL_S = 0.5  # how often the embedded service's liveness is checked


events.init_command_line_parser.add_listener(add_arguments)


class RunContext:
    """One run, seen from the master (or the only) Locust process: everything the run directory receives."""

    def __init__(self, environment: Environment, runner: Runner) -> None:
        options = environment.parsed_options
        self.environment = environment
        self.runner = runner
        self.redactor = run_redactor(options, environment.host)
        self.started_at = datetime.now(UTC)
        self.test_started_s: float | None = None
        self.test_stopped_s: float | None = None
        self.embedded: EmbeddedService | None = None
        self.external_catalog: dict[str, Any] | None = None
        self.profile: Profile | None = load_profile(options.profile) if options.profile else None
        texts = [*(self.profile.thresholds if self.profile else []), *options.threshold]
        self.thresholds: list[Threshold] = parse_thresholds(texts)
        scenario = Path(environment.locustfile or "locustfile").stem
        self.run_dir = RunDirectory(Path(options.runs_dir), scenario, redactor=self.redactor)
        self.requests = ArrowStreamWriter(self.run_dir.file("requests.arrows"), REQUEST_SCHEMA, RECENT_WINDOW_S)
        self.recorder = RequestRecorder(worker="local")
        self.workers: dict[str, dict[str, Any]] = {}
        self.verdict: Verdict | None = None
        self.finished = False
        self._greenlets: list[gevent.Greenlet] = []
        self._csv: StatsCSVFileWriter | None = None
        self.sampler: SamplerProcess | None = None
        self.report: ReportResult | None = None
        self.worker_samples: ArrowStreamWriter | None = None
        self._profile_shape: LoadTestShape | None = None
        self.service_exit: dict[str, Any] | None = None

    # ---- start ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the embedded service when no host was given, install the profile's shape, start writers."""
        options = self.environment.parsed_options
        if not self.environment.host:
            self.embedded = start_embedded_service(
                options.catalog_size, workers=options.service_workers, log_path=self.run_dir.file("service.log"),
                write_token=options.write_token, read_token=options.read_token,
            )  # fmt: skip
            atexit.register(self.embedded.stop)
            self.redactor.add(self.embedded.write_token)
            # The users read it from the options; Locust's spawn messages carry the options to the workers.
            options.write_token = self.embedded.write_token
            self.environment.host = self.embedded.base_url
        elif options.load_catalog:
            self.external_catalog = ensure_catalog(
                self.environment.host, options.catalog_size, write_token=options.write_token,
                read_token=options.read_token,
            )  # fmt: skip
        self._install_shape()
        self._csv = StatsCSVFileWriter(
            self.environment, PERCENTILES_TO_REPORT, str(self.run_dir.file("locust")), full_history=True
        )
        self._greenlets = [gevent.spawn(self._csv.stats_writer), gevent.spawn(self._flush_loop)]
        if self.embedded is not None:
            self._greenlets.append(gevent.spawn(self._watch_service))
        if isinstance(self.runner, MasterRunner):
            self._greenlets.append(gevent.spawn(self._watch_workers))
            self.worker_samples = open_worker_samples(self.run_dir.path)
        if options.sample_interval > 0:
            self._start_sampler(options)
        logger.info("run directory: %s; host under test: %s", self.run_dir.path, redact_url(self.environment.host))

    def _install_shape(self) -> None:
        """Make the profile's shape drive the run (none: -u/-r/-t, or the web UI's fields, drive it)."""
        if self.profile is None:
            if self._profile_shape is not None and self.environment.shape_class is self._profile_shape:
                self.environment.shape_class = None  # a locustfile's own shape class is left alone
            self._profile_shape = None
            return
        window_s = float(self.profile.shape_params.get("step_s", 15.0))  # the stress shape probes each step
        shape = shape_from_profile(
            self.profile,
            breach_check=lambda: self._breach_check(window_s),
            rps_probe=lambda: self._recent_rps(window_s),
        )
        shape.runner = self.runner
        self.environment.shape_class = self._profile_shape = shape

    def use_profile(self, name: str | None) -> None:
        """Switch to profile ``name`` (None: no profile) between web UI runs. Raises ValueError for a bad one."""
        if (self.profile.name if self.profile else None) == name or (self.profile and str(self.profile.source) == name):
            return
        profile = load_profile(name) if name else None
        texts = [*(profile.thresholds if profile else []), *self.environment.parsed_options.threshold]
        self.thresholds = parse_thresholds(texts)
        self.profile = profile
        self._install_shape()
        logger.info("profile for the next run: %s", name or "none (the form's users and spawn rate)")

    def watch_web_ui(self, web_ui: Any) -> None:
        """Apply the web UI's profile field when a run starts: Locust reads the shape right after its hook."""

        @web_ui.app.before_request
        def _profile_from_form() -> Any:
            if request.method != "POST" or not request.path.rstrip("/").endswith("/swarm"):
                return None
            try:
                self.use_profile(request.form.get("profile", "").strip() or None)
            except ValueError as error:
                return jsonify({"success": False, "message": str(error), "host": self.environment.host})
            return None

    def _start_sampler(self, options: Any) -> None:
        # The service first: the sampler gives a pid the role of the first target that claims it, and the
        # embedded service is also a child of this (generator) process.
        targets: dict[str, list[int]] = {}
        if self.embedded is not None:
            targets["service"] = [self.embedded.process.pid]
        elif options.service_pid:
            targets["service"] = [options.service_pid]
        matches = {"service": options.service_match} if options.service_match else {}
        targets["generator"] = [os.getpid()]
        if "service" not in targets and not matches:
            logger.warning("the service runs elsewhere: only the load generators and this host are sampled "
                           "(--service-pid or --service-match select a local service)")  # fmt: skip
        self.sampler = SamplerProcess(self.run_dir.path, targets, options.sample_interval, matches)

    def _flush_loop(self) -> None:
        while True:
            self.requests.write(self.recorder.drain())
            gevent.sleep(FLUSH_INTERVAL_S)

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

    # ---- live probes for the stress profile ------------------------------------------------------------------

    def _request_thresholds(self) -> list[Threshold]:
        return [t for t in self.thresholds if t.metric not in RESOURCE_METRICS]

    def _breach_check(self, window_s: float = 15.0) -> str | None:
        """The first request threshold failing over the last ``window_s`` seconds, or None."""
        self.requests.write(self.recorder.drain())
        recent = self.requests.recent(time.time() - window_s)
        checks = self._request_thresholds()
        if not checks or recent.num_rows == 0:
            return None
        verdict = evaluate(checks, recent, duration_s=window_s, start_s=time.time() - window_s)
        failed = [r for r in verdict.results if r.status == "fail"]
        return failed[0].line() if failed else None

    def _recent_rps(self, window_s: float = 15.0) -> float:
        return self.requests.recent(time.time() - window_s).num_rows / window_s

    # ---- events ---------------------------------------------------------------------------------------------

    def on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        payload = data.get(REPORT_KEY)
        if payload:
            for batch in batch_from_bytes(payload).to_batches():
                self.requests.write(batch)
        samples = data.get(SAMPLES_KEY)
        if samples and self.worker_samples is not None:
            for batch in batch_from_bytes(samples).to_batches():
                self.worker_samples.write(batch)

    # ---- finish ---------------------------------------------------------------------------------------------

    def finish(self) -> None:
        """Write everything the run directory promises (idempotent)."""
        if self.finished:
            return
        self.finished = True
        for greenlet in self._greenlets:
            greenlet.kill(block=True)
        self.requests.write(self.recorder.drain())
        self.requests.close()
        ended_s = time.time()
        self._save_cache_stats()
        if self.sampler is not None:
            self.sampler.stop()
        if self.worker_samples is not None:
            self.worker_samples.close()
            merge_worker_samples(self.run_dir.path)
        self._write_final_csvs()
        self.run_dir.file("locust_report.html").write_text(
            self.redactor.text(get_html_report(self.environment, show_download_link=False)), encoding="utf-8"
        )
        requests = read_stream(self.requests.path)
        started_s = self.test_started_s or (self.started_at.timestamp())
        duration_s = max((self.test_stopped_s or ended_s) - started_s, 1e-3)
        if self.thresholds:
            samples_path = self.run_dir.file("samples.arrows")
            samples = read_stream(samples_path) if samples_path.exists() else None
            self.verdict = evaluate(self.thresholds, requests, duration_s, samples, start_s=started_s)
            if not self.verdict.passed:
                self.environment.process_exit_code = THRESHOLD_EXIT_CODE
        self.run_dir.write_json(
            "thresholds.json",
            {"evaluated": bool(self.thresholds), **(self.verdict.to_dict() if self.verdict else {"passed": True})},
        )
        self.run_dir.write_json("metadata.json", self._metadata(started_s, ended_s, duration_s, requests.num_rows))
        try:
            self.report = build_report(self.run_dir.path)
        except Exception:  # the run's data is already on disk; `python -m harness report` can retry
            logger.exception("the combined report could not be built")

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
        shape = self.environment.shape_class
        return {
            "scenario": self.run_dir.path.name.split("-", 2)[-1],
            "locustfile": options.locustfile,
            "host": self.environment.host,
            "embedded_service": None
            if self.embedded is None
            else {
                "pid": self.embedded.process.pid,
                "store_path": str(self.embedded.store_path),
                "writes": "closed by the --write-token given"
                if options.write_token and options.write_token != self.embedded.write_token
                else "closed by a generated token",
                "exit": self.service_exit,
                "workers": options.service_workers,
                "catalog": {k: v for k, v in self.embedded.catalog.items() if k != "stored"},
            },
            "external_catalog": self.external_catalog,
            "profile": None
            if self.profile is None
            else {"name": self.profile.name, "shape": self.profile.shape, "source": str(self.profile.source)},
            "shape_result": shape.result() if shape is not None and hasattr(shape, "result") else None,
            "thresholds": [t.text for t in self.thresholds],
            "options": {
                "users": options.num_users,
                "spawn_rate": options.spawn_rate,
                "run_time_s": options.run_time,
                "headless": options.headless,
                "master": options.master,
                "expect_workers": getattr(options, "expect_workers", None),
                "exit_code_on_error": options.exit_code_on_error,
            },
            "runner": type(self.runner).__name__,
            "workers": self.workers,
            "workers_lost": sorted(w for w, seen in self.workers.items() if seen.get("lost_at_s")),
            "started_at": datetime.fromtimestamp(started_s, UTC).isoformat(),
            "ended_at": datetime.fromtimestamp(ended_s, UTC).isoformat(),
            "duration_s": round(duration_s, 3),
            "requests_recorded": request_rows,
            "locust_totals": {
                "requests": self.environment.stats.total.num_requests,
                "failures": self.environment.stats.total.num_failures,
            },
            "exit_code": self.exit_code(),
            "environment": collect_environment(os.environ, Path.cwd()),
        }

    def exit_code(self) -> int:
        """The code Locust will exit with, decided as its shutdown does (after the quitting event)."""
        if self.environment.process_exit_code is not None:
            return int(self.environment.process_exit_code)
        if self.runner.errors or self.runner.exceptions:
            return int(self.environment.parsed_options.exit_code_on_error)
        return 2 if locust.log.unhandled_greenlet_exception else 0

    def record_exit_code(self, code: int) -> None:
        """Correct metadata.json (and the report) if the process exits with another code than foreseen."""
        path = self.run_dir.file("metadata.json")
        if not self.finished or not path.exists():
            return
        metadata = json.loads(path.read_text(encoding="utf-8"))
        if metadata.get("exit_code") == code:
            return
        metadata["exit_code"] = code
        self.run_dir.write_json("metadata.json", metadata)
        with contextlib.suppress(Exception):
            self.report = build_report(self.run_dir.path)

    def stop_service(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()

    def print_verdict(self) -> None:
        """One line per failed threshold, then where the run directory is."""
        if self.verdict is not None:
            status = "passed" if self.verdict.passed else "FAILED"
            print(f"\nThresholds {status} ({len(self.verdict.results)} checked)", file=sys.stderr)
            for line in self.verdict.lines():
                print(f"  {line}", file=sys.stderr)
        shape = self.environment.shape_class
        if shape is not None and hasattr(shape, "result"):
            found = shape.result()
            rps = found["highest_ok_rps"]
            print(
                f"Stress: held {found['highest_ok_users']} users"
                + (f" at {rps:.1f} req/s" if rps is not None else "")
                + f" within the thresholds; stopped by {found['stopped_because']}"
                + (f" at {found['breached_at_users']} users: {found['breach']}" if found["breach"] else ""),
                file=sys.stderr,
            )
        if self.report is not None:
            for finding in self.report.findings:
                print(f"  finding ({finding.severity}): {finding.message}", file=sys.stderr)
            print(f"Report: {self.report.html_path}", file=sys.stderr)
        print(f"Run directory: {self.run_dir.path}", file=sys.stderr)


def run_redactor(options: Any, host: str | None) -> Redactor:
    """The run's Redactor (its tokens, the host URL's password, the environment's secrets), also installed on
    the log handlers so that no log line shows them."""
    redactor = Redactor([getattr(options, "write_token", None), getattr(options, "read_token", None),
                         *secrets_in_env(os.environ), *secrets_in_env({"host": host or ""})])  # fmt: skip
    for handler in logging.getLogger().handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, RedactingFilter)]
        handler.addFilter(RedactingFilter(redactor))
    return redactor


_run: RunContext | None = None
_worker: WorkerSide | None = None


@events.init.add_listener
def _on_init(environment: Environment, runner: Runner, web_ui: Any = None, **_: Any) -> None:
    global _run, _worker
    if isinstance(runner, WorkerRunner):
        _worker = WorkerSide(environment, runner, run_redactor(environment.parsed_options, environment.host))
        return
    try:
        _run = RunContext(environment, runner)
    except ValueError as error:  # a bad profile or threshold: say so before anything starts
        logger.error("%s", error)
        sys.exit(2)
    if web_ui is not None:
        _run.watch_web_ui(web_ui)
    try:
        _run.start()
    except (ServiceStartError, RuntimeError, OSError) as error:
        logger.error("the embedded service could not start: %s (its log: %s)", error, _run.run_dir.file("service.log"))
        _run.stop_service()
        sys.exit(2)


@events.request.add_listener
def _on_request(request_type: str, name: str, response_time: float, response_length: int,
                exception: BaseException | None = None, start_time: float | None = None, **_: Any) -> None:  # fmt: skip
    side = _worker if _worker is not None else _run
    if side is not None:
        recorder = side.recorder
        started = start_time if start_time is not None else time.time() - response_time / 1000.0
        error = None if exception is None else side.redactor.text(f"{type(exception).__name__}: {exception}")[:500]
        recorder.record(started, request_type, name, response_time, response_length, error)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    if _worker is not None:
        _worker.fill_report(data)


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    if _run is not None:
        _run.on_worker_report(client_id, data)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if _run is not None and _run.test_started_s is None:
        _run.test_started_s = time.time()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if _run is not None:
        _run.test_stopped_s = time.time()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if _run is not None:
        _run.finish()
    if _worker is not None:
        _worker.close()


@events.quit.add_listener
def _on_quit(exit_code: int, **_: Any) -> None:
    if _run is not None:
        _run.record_exit_code(exit_code)
        _run.stop_service()
        _run.print_verdict()
