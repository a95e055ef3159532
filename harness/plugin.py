"""Locust event wiring: importing this module (every locustfile does) registers the harness's options and
listeners. The work is done elsewhere: ``harness.locust_side.session.Session`` (the master's or the only process's part:
the embedded service, the profile, one ``harness.locust_side.run.RunContext`` per run),
``harness.locust_side.worker.WorkerSide`` (a worker's part), ``harness.locust_side.webui`` (the web UI's Harness tab,
profile field and routes), ``harness.locust_side.runcontrol`` (stop reasons, signals, ``-t`` capping a profile).

Exit codes: Locust's own (``--exit-code-on-error`` keeps its meaning), ``THRESHOLD_EXIT_CODE`` (3) when a
threshold fails or cannot be measured (a run without any request included), 130 / 143 when SIGINT / SIGTERM
interrupted the run, 2 for a run refused before it started (``-t 0``, ``-u 0``, a bad option, the service not
starting). metadata.json records the code the process exits with (a web UI run: its own code, see
harness.locust_side.session).

Secrets (the tokens, the host URL's password, secret-named environment variables) are masked in everything the
run records and logs, by harness.recording.redact's rule.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import Runner, WorkerRunner

from harness.locust_side.options import add_arguments
from harness.locust_side.preflight import PREFLIGHT_EXIT_CODE, PreflightError, catalog_load_problem, preflight
from harness.locust_side.progress import Progress, progress_for
from harness.locust_side.run import RunContext
from harness.locust_side.runcontrol import run_limit_refusal
from harness.locust_side.session import Session
from harness.locust_side.worker import WorkerSide
from harness.profiling.cpu_profile import start_for_run as start_cpu_profile
from harness.recording.redact import RedactingFilter, Redactor, secrets_in_env
from harness.sampling.wire import agents_bind_refusal
from harness.timing.arrivals import open_model_enabled, quiet_heap
from harness.verdict.thresholds import THRESHOLD_EXIT_CODE
from service.launcher import ServiceStartError

__all__ = ["THRESHOLD_EXIT_CODE", "RunContext", "Session", "run_redactor"]

logger = logging.getLogger("featureload")


# every harness option (harness.locust_side.options.OPTIONS)
events.init_command_line_parser.add_listener(add_arguments)


def run_redactor(options: Any, host: str | None) -> Redactor:
    """The run's Redactor (its tokens, the passwords of the host's and --prometheus URLs, the environment's
    secrets), also installed on the log handlers so that no log line shows them."""
    urls = {"host": host or "", "prometheus": getattr(options, "prometheus", None) or ""}  # their passwords
    redactor = Redactor([getattr(options, "write_token", None), getattr(options, "read_token", None),
                         *secrets_in_env(os.environ), *secrets_in_env(urls)])  # fmt: skip
    for handler in logging.getLogger().handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, RedactingFilter)]
        handler.addFilter(RedactingFilter(redactor))
    return redactor


_session: Session | None = None
_worker: WorkerSide | None = None
_progress: Progress | None = None
# Locust imports the locustfile (and this module) before it forks its --processes workers: a worker whose pid is
# not this one was forked by this one.
_IMPORTED_IN_PID = os.getpid()


@events.init.add_listener
def _on_init(environment: Environment, runner: Runner, web_ui: Any = None, **_: Any) -> None:
    global _session, _worker, _progress
    if isinstance(runner, WorkerRunner):
        forked_by = _IMPORTED_IN_PID if os.getpid() != _IMPORTED_IN_PID else None
        _worker = WorkerSide(environment, runner, run_redactor(environment.parsed_options, environment.host),
                             forked_by=forked_by)  # fmt: skip
        return
    refusal = run_limit_refusal(environment.parsed_options) or agents_bind_refusal(
        getattr(environment.parsed_options, "agents_bind", ""), os.environ
    )
    if refusal is not None:  # -t 0 would run forever, -u 0 would measure nothing, no token beyond loopback
        logger.error("%s", refusal)
        sys.exit(2)
    try:
        preflight(environment)
    except PreflightError as error:  # one line, before anything starts or any user spawns (locust_side.preflight)
        logger.error("%s", error)
        sys.exit(PREFLIGHT_EXIT_CODE)
    try:
        _session = Session(environment, runner, run_redactor(environment.parsed_options, environment.host))
    except ValueError as error:  # a bad profile, threshold or --prometheus*: say so before anything starts
        logger.error("%s", error)
        sys.exit(2)
    if web_ui is not None:
        from harness.locust_side import webui

        webui.install(web_ui, _session)
    try:
        _session.start()
    except (ServiceStartError, RuntimeError, OSError) as error:
        if _session.embedded is None and environment.host:  # -H with --load-catalog: no embedded service involved
            logger.error("%s", catalog_load_problem(environment.host, error))
        else:
            logger.error("the embedded service could not start: %s", error)
        _session.stop_service()
        sys.exit(2)
    _progress = progress_for(environment, sys.stderr)


@events.request.add_listener
def _on_request(request_type: str, name: str, response_time: float, response_length: int,
                exception: BaseException | None = None, start_time: float | None = None, **_: Any) -> None:  # fmt: skip
    side = _worker if _worker is not None else (_session.current if _session is not None else None)
    if side is not None:
        recorder = side.recorder
        # HDR histograms; in the open model the latency from the intended start (harness.timing.latency)
        started, latency_ms = side.latency.observe(request_type, name, response_time, start_time, exception is not None)
        if not side.latency.keep_row():  # --request-log
            return
        error = None if exception is None else side.redactor.text(f"{type(exception).__name__}: {exception}")[:500]
        recorder.record(started, request_type, name, latency_ms, response_length, error)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    if _worker is not None:
        _worker.fill_report(data)


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    if _session is not None:
        _session.on_worker_report(data, client_id)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if open_model_enabled(environment):
        quiet_heap()  # before the first arrival is offered (every Locust process: the workers send them)
    if _session is not None:
        _session.on_test_start()
        # --profile-cpu: a py-spy window on the service (harness.profiling.cpu_profile)
        start_cpu_profile(_session.current)
        if _session.current is not None and open_model_enabled(environment):
            _session.current.rates.start()
    if _progress is not None:
        _progress.start()


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    if _session is not None and _session.current is not None:
        _session.current.rates.stop()  # the offered rate ends here, before the workers have stopped


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if _session is not None:
        _session.on_test_stop()
    if _progress is not None:
        _progress.stop()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if _session is not None:
        _session.on_quitting()
    if _worker is not None:
        _worker.close()


@events.quit.add_listener
def _on_quit(exit_code: int, **_: Any) -> None:
    if _session is not None:
        _session.on_quit(exit_code)
