"""The harness inside one Locust master (or local) process: what lives across runs, and the run lifecycle.

A session owns the long-lived parts: the redactor, the embedded service (or the external host's catalog), the
profile chosen (on the command line, or in the web UI's profile field before each Start), the signal watch. It
makes one ``harness.locust_side.run.RunContext`` per run, test_start to test_stop:

- headless: the run is made when the process starts (its directory holds the embedded service's log from the
  first line) and finished when Locust quits: one run, one directory, as a user of ``--headless`` expects;
- web UI: each Start makes a run and each stop (the Stop button, a shape's end, ``-t``) finishes it in a
  background greenlet: files, thresholds (the profile's too), verdict and metadata, then the report, built in a
  child process so the UI stays responsive. The process exits with the code of its last run.

A master waits for its workers' last reports (``WORKER_SETTLE_S``) before it finishes a run, so the request log
holds every request the workers made. A run still going when the process quits (Ctrl-C, SIGTERM) is stopped
first, then finished: the request log, Locust's CSVs and its console table count the same requests.
"""

from __future__ import annotations

import atexit
import logging
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust import LoadTestShape
from locust.env import Environment
from locust.runners import STATE_STOPPED, WORKER_REPORT_INTERVAL, MasterRunner, Runner

from harness.locust_side.run import RunContext, RunSetup
from harness.locust_side.runcontrol import SignalWatch, cap_shape, stop_reason_from_stack
from harness.recording.prometheus import PrometheusSource, source_from_options
from harness.recording.recorder import RequestRecorder
from harness.recording.redact import Redactor
from harness.sampling.worker_clock import WorkerClocks
from harness.target.embedded import EmbeddedService, ensure_catalog, start_embedded_service
from harness.verdict.thresholds import Threshold, parse_thresholds
from profiles.model import Profile, load_profile
from profiles.shapes import shape_from_profile

__all__ = ["WORKER_SETTLE_S", "Session"]

logger = logging.getLogger("featureload")

WORKER_SETTLE_S = WORKER_REPORT_INTERVAL + 1.0  # a worker reports every 3 s: its last requests arrive by then


class Session:
    """The harness in a master or local Locust process (see the module docstring)."""

    def __init__(self, environment: Environment, runner: Runner, redactor: Redactor) -> None:
        options = environment.parsed_options
        self.environment = environment
        self.runner = runner
        self.redactor = redactor
        self.headless = bool(options.headless)
        # --prometheus and its queries, checked before anything starts (ValueError: one line)
        self.prometheus: PrometheusSource | None = source_from_options(options)
        self.signals = SignalWatch()
        self.recorder = RequestRecorder(worker="local")
        self.profile: Profile | None = load_profile(options.profile) if options.profile else None
        self.thresholds: list[Threshold] = self._thresholds_for(self.profile)
        self.scenario = Path(environment.locustfile or "locustfile").stem
        self.embedded: EmbeddedService | None = None
        self.external_catalog: dict[str, Any] | None = None
        self.service_log: Path | None = None
        self.current: RunContext | None = None  # the run going on (or being finished)
        self.runs: list[RunContext] = []  # every run of the session, oldest first
        self._profile_shape: LoadTestShape | None = None
        self._finishers: dict[int, gevent.Greenlet] = {}
        # workers on other hosts: their clocks, pinged every second (harness.sampling.worker_clock)
        self.worker_clocks = WorkerClocks(runner) if isinstance(runner, MasterRunner) else None
        if self.worker_clocks is not None:
            gevent.spawn(self._ping_workers, self.worker_clocks)
        self._quitting = Event()  # set once Locust quits: a master's finisher stops waiting for reports
        self._quit_started = False
        self._finished_while_quitting: list[RunContext] = []
        if self.headless:  # the run exists from the start: the service's log goes into its directory
            self.current = self._new_run()
            self.service_log = self.current.run_dir.file("service.log")

    @staticmethod
    def _ping_workers(clocks: WorkerClocks) -> None:
        while True:
            clocks.ping()
            gevent.sleep(1.0)

    def _thresholds_for(self, profile: Profile | None) -> list[Threshold]:
        texts = [*(profile.thresholds if profile else []), *self.environment.parsed_options.threshold]
        return parse_thresholds(texts)

    def _new_run(self) -> RunContext:
        setup = RunSetup(
            redactor=self.redactor, runs_dir=Path(self.environment.parsed_options.runs_dir), scenario=self.scenario,
            profile=self.profile, thresholds=list(self.thresholds), embedded=self.embedded,
            external_catalog=self.external_catalog, service_log=self.service_log, prometheus=self.prometheus,
            live_prometheus=not self.headless, worker_clocks=self.worker_clocks,
        )  # fmt: skip
        run = RunContext(self.environment, self.runner, setup, self.recorder)
        self.runs.append(run)
        return run

    # ---- start ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the embedded service when no host was given (or load the catalog of the one given), install
        the profile's shape, watch signals; headless, start the run."""
        options = self.environment.parsed_options
        self.signals.install()
        if not self.environment.host:
            self.embedded = start_embedded_service(
                options.catalog_size, workers=options.service_workers, log_path=self.service_log,
                write_token=options.write_token, read_token=options.read_token,
            )  # fmt: skip
            atexit.register(self.embedded.stop)
            self.redactor.add(self.embedded.write_token)
            # The users read it from the options; Locust's spawn messages carry the options to the workers.
            options.write_token = self.embedded.write_token
            self.environment.host = self.embedded.base_url
            self.service_log = self.embedded.process.log_path
        elif options.load_catalog:
            self.external_catalog = ensure_catalog(
                self.environment.host, options.catalog_size, write_token=options.write_token,
                read_token=options.read_token,
            )  # fmt: skip
        self._install_shape()
        if self.current is not None:
            self.current.setup.embedded = self.current.embedded = self.embedded
            self.current.setup.external_catalog = self.external_catalog
            self._start_run(self.current)

    def _start_run(self, run: RunContext) -> None:
        options = self.environment.parsed_options
        run.start(options.sample_interval, options.service_pid, options.service_match)

    def _install_shape(self) -> None:
        """Make the profile's shape drive the runs (none: -u/-r/-t, or the web UI's fields, drive them); ``-t``
        caps it."""
        if self.profile is None:
            if self._profile_shape is not None and self.environment.shape_class is self._profile_shape:
                self.environment.shape_class = None  # a locustfile's own shape class is left alone
            self._profile_shape = None
            return
        window_s = float(self.profile.shape_params.get("step_s", 15.0))  # the stress shape probes each step
        shape = shape_from_profile(
            self.profile,
            breach_check=lambda: self.current.breach_check(window_s) if self.current else None,
            rps_probe=lambda: self.current.recent_rps(window_s) if self.current else 0.0,
        )
        run_time_s = self.environment.parsed_options.run_time
        if run_time_s:
            cap_shape(shape, float(run_time_s), self._on_cap)
        shape.runner = self.runner
        self.environment.shape_class = self._profile_shape = shape

    def _on_cap(self) -> None:
        run = self.current
        if run is not None:
            run.stop_reason = run.stop_reason or "time limit"
            run.run_time_cap_s = float(self.environment.parsed_options.run_time)
            logger.info("-t %g s reached: the profile's shape stops here", run.run_time_cap_s)

    def use_profile(self, name: str | None) -> None:
        """Switch to profile ``name`` (None: no profile) between web UI runs. Raises ValueError for a bad one."""
        current = self.profile
        if current is not None and name in (current.name, str(current.source)):
            return
        if current is None and not name:
            return
        profile = load_profile(name) if name else None
        self.thresholds = self._thresholds_for(profile)
        self.profile = profile
        self._install_shape()
        logger.info("profile for the next run: %s", name or "none (the form's users and spawn rate)")

    # ---- the run lifecycle ----------------------------------------------------------------------------------

    def on_test_start(self) -> None:
        run = self.current
        if run is None or run.finished or run.test_stopped_s is not None:
            run = self.current = self._new_run()
            self._start_run(run)
        if run.test_started_s is None:
            run.test_started_s = time.time()

    def on_test_stop(self) -> None:
        run = self.current
        if run is None or run.test_stopped_s is not None:
            return
        run.test_stopped_s = time.time()
        run.stop_reason = self.signals.signal_name or run.stop_reason or stop_reason_from_stack()
        finisher = gevent.spawn(self._finish, run)
        self._finishers[id(run)] = finisher

    def _finish(self, run: RunContext) -> None:
        if isinstance(self.runner, MasterRunner):
            self._quitting.wait(WORKER_SETTLE_S)  # the workers' last reports; at quit, Locust waited for them
        shape = self.environment.shape_class
        if shape is not None and hasattr(shape, "result") and shape.result().get("stopped_because") == "breach":
            run.stop_reason = "threshold breach"
        run.stop_reason = run.stop_reason or "quit"
        run.finish()
        self._set_process_exit_code(run)
        if run.record_error is not None:  # nothing to report on: the run's files could not be written
            if self.headless or self._quit_started:
                self._finished_while_quitting.append(run)
            else:
                run.print_verdict()
            return
        if self.headless or self._quit_started:  # the report now; the verdict once the exit code is known
            self._finished_while_quitting.append(run)
            run.build_report()
            return
        run.build_report(in_child=not self.headless)
        if not self.headless:
            run.print_verdict()

    def _set_process_exit_code(self, run: RunContext) -> None:
        """The process exits with the code of its last run (Locust itself adds --exit-code-on-error)."""
        code = run.exit_code
        if run.record_error is not None:  # never a pass, whatever --exit-code-on-error is
            self.environment.process_exit_code = code
            return
        self.environment.process_exit_code = code if code not in (None, 0, self._error_code()) else None

    def _error_code(self) -> int:
        return int(self.environment.parsed_options.exit_code_on_error)

    def on_worker_report(self, data: dict[str, Any], client_id: str | None = None) -> None:
        run = self.current
        if run is not None and not run.finished:
            run.on_worker_report(data, client_id)

    def on_quitting(self) -> None:
        """Locust is quitting: a run still going is stopped (so that no request is left out of its files) and
        finished, with SIGINT/SIGTERM as its reason when a signal brought this about."""
        self.signals.from_locust_sigterm()
        self._quit_started = True
        run = self.current
        stopped_here = False
        if run is not None and run.test_stopped_s is None and run.test_started_s is not None:
            run.stop_reason = self.signals.signal_name or stop_reason_from_stack() or "quit"
            if self.runner.state != STATE_STOPPED:
                stopped_here = True
                self.runner.stop()  # fires test_stop: the run's finisher starts
        if not (stopped_here and isinstance(self.runner, MasterRunner)):
            self._quitting.set()  # else the finisher waits for the workers' last reports
        if run is not None and id(run) not in self._finishers and not run.finished:
            run.stop_reason = run.stop_reason or self.signals.signal_name or "quit"
            self._finishers[id(run)] = gevent.spawn(self._finish, run)
        gevent.joinall(list(self._finishers.values()))
        self._quitting.set()

    def on_quit(self, exit_code: int) -> None:
        for run in self._finished_while_quitting:
            run.record_exit_code(exit_code)
        self.stop_service()
        for run in self._finished_while_quitting:
            run.print_verdict(exit_code)

    def stop_service(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()

    # ---- what the web UI shows ------------------------------------------------------------------------------

    def last_run(self) -> RunContext | None:
        return self.runs[-1] if self.runs else None

    def known_run(self, name: str) -> RunContext | None:
        """The run of this session whose directory is called ``name`` (None if there is none)."""
        return next((run for run in self.runs if run.run_dir.path.name == name), None)
