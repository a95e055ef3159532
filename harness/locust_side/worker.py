"""A Locust worker's part of the harness: it records its requests and samples itself; both ride to the master
inside Locust's own worker reports (the master writes them into the run directory).

A worker that Locust forked (``--processes N``) dies with the process that forked it (Linux's parent-death
signal, SIGKILL, as the embedded service does): a master killed with SIGKILL used to leave its workers sending the
full load for a minute, until Locust's heartbeat gave up. A worker started on its own (``--worker``) is left to
Locust's heartbeat: its parent is a shell or a container's init. A forked worker ignores SIGINT (Ctrl-C reaches
the whole process group): its master stops the run and tells it to quit."""

from __future__ import annotations

import signal
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import WorkerRunner

from harness.recording.recorder import RequestRecorder, batch_to_bytes
from harness.recording.redact import Redactor
from harness.sampling.monitoring import WorkerSampling
from harness.sampling.worker_clock import answer_pings
from harness.timing.arrivals import register_rate_listener
from harness.timing.latency import LatencySide
from service.lifeline import die_with_parent

__all__ = ["REPORT_KEY", "SAMPLES_KEY", "WorkerSide"]

REPORT_KEY = "featureload_requests"
SAMPLES_KEY = "featureload_samples"


class WorkerSide:
    """A worker's part: record its requests and sample itself; both ride on Locust's reports to the master."""

    def __init__(
        self, environment: Environment, runner: WorkerRunner, redactor: Redactor, forked_by: int | None = None
    ) -> None:
        if forked_by is not None:  # the pid of the Locust process that forked this one (--processes)
            die_with_parent(forked_by)
            # Ctrl-C reaches the whole process group: the master stops the run and tells its workers to quit (with
            # their last report). A worker interrupted itself meanwhile printed a KeyboardInterrupt traceback from
            # inside its report and could lose that report's requests.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.recorder = RequestRecorder(worker=runner.client_id)
        # HDR histograms and the open model's rate share (harness.timing.latency, harness.timing.arrivals);
        # --request-log is read again once the master's options arrive with the first spawn message
        self.latency = LatencySide(lambda: getattr(environment.parsed_options, "request_log", "auto"))
        environment.featureload_latency = self.latency  # type: ignore[attr-defined]
        register_rate_listener(runner, self.latency)
        answer_pings(runner)  # the master estimates this host's clock (harness.sampling.worker_clock)
        self.redactor = redactor  # error messages are recorded through it
        interval_s = environment.parsed_options.sample_interval
        self.sampling = WorkerSampling(interval_s) if interval_s > 0 else None
        self._ticker = gevent.spawn(self._tick_loop) if self.sampling is not None else None

    def _tick_loop(self) -> None:
        assert self.sampling is not None
        while True:
            self.sampling.tick()
            gevent.sleep(self.sampling.interval_s)

    def fill_report(self, data: dict[str, Any]) -> None:
        self.latency.fill_report(data)
        batch = self.recorder.drain()
        if batch is not None:
            data[REPORT_KEY] = batch_to_bytes(batch)
        if self.sampling is not None and (samples := self.sampling.take_new_rows()) is not None:
            data[SAMPLES_KEY] = samples

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.kill(block=True)
        if self.sampling is not None:
            self.sampling.close()
