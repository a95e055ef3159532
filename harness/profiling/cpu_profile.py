"""A CPU profile window of the service during a Locust run: ``--profile-cpu 10s`` (``FEATURELOAD_PROFILE_CPU``).

py-spy (a sampling profiler in its own process: the service is not changed, not restarted, not slowed by more than
its sampling) records the service's whole process tree (``--subprocesses``: every uvicorn worker) at ``rate_hz``
for the window, starting when the test starts or ``@DELAY`` later (``--profile-cpu 10s@20s``: ten seconds from
the twentieth, past the ramp-up). When the test stops first, the window is cut short there. The run directory
receives::

    profile.collapsed         py-spy's raw stacks (flamegraph.pl input)
    profile.speedscope.json   open in https://www.speedscope.app
    profile.svg               a flame graph, colored by layer
    profile_summary.json      where the time goes: top functions by self and cumulative time, by layer
                              (harness.profiling.profile_summary); the run report shows it (harness.report.profile)

py-spy needs to read the service's memory (ptrace rights: root, or ``kernel.yama.ptrace_scope`` 0, or
CAP_SYS_PTRACE in a container). Where it cannot, profile_summary.json says why and the run goes on; the profiling
script tests/performance/profiling/cpu_profiler.py then falls back to cProfile inside the service process.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.profiling.profile_summary import read_collapsed, summarize_stacks, write_outputs

__all__ = ["DEFAULT_RATE_HZ", "CpuProfileWindow", "parse_window", "py_spy_path", "start_for_run"]

logger = logging.getLogger("featureload.cpu_profile")
DEFAULT_RATE_HZ = 100
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_windows: list[CpuProfileWindow] = []  # started by this process' runs; finished at test stop
_windows_hooked: list[bool] = []


def _seconds(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use e.g. 10s, 500ms, 1m")
    value = float(match[1])
    return value / 1000 if match[2] == "ms" else value * 60 if match[2] == "m" else value


def parse_window(text: str | None) -> tuple[float, float]:
    """``"10s"`` -> (10.0, 0.0); ``"10s@20s"`` -> (10.0, 20.0): (window, delay after the test starts) in seconds.
    Empty or "0" means off: (0.0, 0.0). Raises ValueError for anything else."""
    if not text or not text.strip() or text.strip() == "0":
        return 0.0, 0.0
    window, _, delay = text.partition("@")
    return _seconds(window), _seconds(delay) if delay else 0.0


def py_spy_path() -> str | None:
    """The py-spy executable beside this Python (the venv's), else on PATH, else None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


@dataclass
class CpuProfileWindow:
    """One py-spy recording of ``pid``'s process tree into ``run_dir``."""

    run_dir: Path
    pid: int
    window_s: float
    rate_hz: int = DEFAULT_RATE_HZ
    process: subprocess.Popen[bytes] | None = None
    started_s: float | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_path(self) -> Path:
        return self.run_dir / "profile.collapsed"

    def start(self) -> bool:
        """Start py-spy; False (and the reason in profile_summary.json) when it is not installed."""
        executable = py_spy_path()
        if executable is None:
            self._fail("py-spy is not installed (pip install py-spy): no CPU profile recorded")
            return False
        command = [
            executable,
            "record",
            "--pid",
            str(self.pid),
            "--subprocesses",
            "--nonblocking",
            "--rate",
            str(self.rate_hz),
            "--duration",
            str(max(1, math.ceil(self.window_s))),
            "--format",
            "raw",
            "--output",
            str(self.raw_path),
        ]
        log = (self.run_dir / "profile.log").open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.started_s = time.time()
        logger.info(
            "CPU profile: py-spy at %d Hz on the service (pid %d) for %g s", self.rate_hz, self.pid, self.window_s
        )
        return True

    def finish(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Stop py-spy if it still runs (SIGINT: it writes what it has), then write the outputs; returns the
        summary (or ``{"error": ...}``)."""
        if self.result:
            return self.result
        if self.process is None:
            return self._fail("the test stopped before the profile window began")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        elapsed = time.time() - (self.started_s or time.time())
        log = (self.run_dir / "profile.log").read_text(encoding="utf-8", errors="replace")[-1500:]
        if not self.raw_path.is_file() or self.raw_path.stat().st_size == 0:
            return self._fail(f"py-spy recorded nothing (exit {self.process.returncode}): {log.strip()}")
        stacks = read_collapsed(self.raw_path.read_text(encoding="utf-8", errors="replace"))
        summary = summarize_stacks(
            stacks, rate_hz=self.rate_hz, window_s=round(min(elapsed, self.window_s), 3), pids=[self.pid]
        )
        write_outputs(self.run_dir, stacks, summary)
        self.result = summary
        return summary

    def _fail(self, reason: str) -> dict[str, Any]:
        logger.warning("CPU profile: %s", reason)
        self.result = {"source": "py-spy", "error": reason, "pid": self.pid, "window_s": self.window_s}
        (self.run_dir / "profile_summary.json").write_text(json.dumps(self.result, indent=2) + "\n", encoding="utf-8")
        return self.result


def start_for_run(run: Any) -> CpuProfileWindow | None:
    """The harness's hook at test start: start the window ``--profile-cpu`` asks for on the service ``run``
    embeds (or ``--service-pid``), after its delay. None when no profile was asked for or no service pid is known."""
    options = run.environment.parsed_options
    window_s, delay_s = parse_window(getattr(options, "profile_cpu", None))
    if window_s <= 0:
        return None
    embedded = getattr(run, "embedded", None)
    pid = embedded.process.pid if embedded is not None else getattr(options, "service_pid", None)
    if not pid:
        logger.warning("--profile-cpu: the service runs elsewhere and no --service-pid names it: no CPU profile")
        return None
    window = CpuProfileWindow(run.run_dir.path, int(pid), window_s)
    if not _windows_hooked:
        from locust import events  # this hook runs under Locust: importing it here patches nothing new

        events.test_stopping.add_listener(lambda **_: finish_all())  # before test_stop starts the report
        _windows_hooked.append(True)
    _windows.append(window)
    if delay_s > 0:
        import gevent  # only under Locust, where this hook runs

        gevent.spawn_later(delay_s, window.start)
    else:
        window.start()
    return window


def finish_all() -> None:
    """Finish every window this process started (called when the test is about to stop)."""
    while _windows:
        _windows.pop().finish()
