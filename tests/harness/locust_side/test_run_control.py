"""Run control that does what was asked, on real headless Locust processes: -t caps a profile's shape, -t 0 and
-u 0 are refused, Ctrl-C and SIGTERM give an interrupted run (never PASSED, a non-zero exit code recorded, the
final tables printed once, no traceback) whose request log, Locust CSV and totals count the same requests, and
a run that made no request fails its thresholds."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.recording.recorder import read_stream
from harness.verdict.thresholds import THRESHOLD_EXIT_CODE  # not harness.plugin: importing locust patches this process
from service.launcher import free_port

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


class Headless:
    """``locust --headless`` in its own session (so a signal can reach its whole group, as a terminal's Ctrl-C
    does), SIGINT handled as in a terminal, a private TMPDIR; stderr collected line by line."""

    def __init__(self, tmp_path: Path, *args: str, locustfile: str = "locustfiles/concurrent_users.py") -> None:
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir(parents=True)
        self.runs_dir = tmp_path / "runs"
        command = [sys.executable, "-m", "locust", "-f", locustfile, "--headless", "--runs-dir", str(self.runs_dir),
                   "--catalog-size", "1000", "--sample-interval", "0.5", *args]  # fmt: skip
        self.started_s = time.monotonic()
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "TMPDIR": str(self.tmpdir)}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not ignored, as in a terminal
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self.lines.append(line)

    def stderr(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout_s: float = 120) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return code

    def run_dir(self) -> Path:
        (path,) = [p for p in self.runs_dir.iterdir() if not p.name.startswith("_")]  # not the reports' _assets
        return path

    def wait_for_requests(self, rows: int = 50, timeout_s: float = 60) -> None:
        def logged() -> bool:
            try:
                return read_stream(self.run_dir() / "requests.arrows").num_rows >= rows
            except (ValueError, OSError):
                return False

        wait_for(logged, timeout_s, lambda: self.stderr()[-3000:])


def wait_for(condition: Callable[[], bool], timeout_s: float, context: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s: {context()}"
        time.sleep(0.1)


def aggregated(run_dir: Path) -> tuple[int, int]:
    """(requests, failures) of locust_stats.csv's Aggregated row."""
    with open(run_dir / "locust_stats.csv", newline="") as handle:
        (row,) = [r for r in csv.DictReader(handle) if r["Name"] == "Aggregated"]
    return int(row["Request Count"]), int(row["Failure Count"])


@pytest.mark.parametrize(
    "flags, named",
    [
        (["-t", "0", "-u", "2"], "-t/--run-time 0 is refused"),
        (["-u", "0", "-t", "5s"], "-u/--users 0 is refused"),
        (["-u", "1", "-t", "5s", "--arrival-rate", "-5"], "--arrival-rate -5 is refused"),
        (["-u", "1", "-t", "5s", "--arrival-rate", "50", "--connections", "0"], "--connections 0 is refused"),
        (["-u", "1", "-t", "5s", "--arrival-rate", "50", "--max-in-flight", "0"], "--max-in-flight 0 is refused"),
    ],
)
def test_zero_limits_and_impossible_open_model_settings_are_refused_with_one_line(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    run = Headless(tmp_path, *flags)
    assert run.wait(60) == 2
    errors = [line for line in run.stderr().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and named in errors[0], run.stderr()
    assert "Traceback" not in run.stderr()
    assert not run.runs_dir.exists() or not any(run.runs_dir.iterdir())  # refused before anything started


def test_run_time_caps_a_profile_and_the_cap_is_recorded(tmp_path: Path) -> None:
    run = Headless(tmp_path, "--profile", "ramp", "-t", "4s", "--only-summary")  # ramp alone lasts 100 s
    code = run.wait(90)
    verdict = json.loads((run.run_dir() / "thresholds.json").read_text())
    failed = [r["threshold"] for r in verdict["results"] if r["status"] != "pass"]
    # The profile's latency limits (p95 < 50ms, p99 < 200ms) can breach while other tests load the machine, and
    # the exit code says so; the cap is what this test checks. No request may fail either way.
    assert code == (THRESHOLD_EXIT_CODE if failed else 0), run.stderr()[-3000:]
    assert all(threshold.startswith(("p95", "p99")) for threshold in failed), failed
    metadata = json.loads((run.run_dir() / "metadata.json").read_text())
    assert metadata["run_time_cap_s"] == 4.0 and metadata["stop_reason"] == "time limit"
    assert metadata["interrupted"] is False and metadata["profile"]["name"] == "ramp"
    assert 3.5 <= metadata["duration_s"] <= 4 + 3, metadata["duration_s"]  # ~4 s and a shape tick's grace
    assert json.loads((run.run_dir() / "thresholds.json").read_text())["evaluated"] is True  # the profile's
    assert "cut at -t 4 s" in run.stderr()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_interrupts_the_run_and_every_finished_request_is_counted_once(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    run = Headless(tmp_path, "-u", "4", "-r", "4", "-t", "60s", "--threshold", "p99 < 10s")
    run.wait_for_requests(rows=50)
    if signum == signal.SIGINT:
        os.killpg(run.process.pid, signum)  # Ctrl-C in a terminal signals the whole foreground group
    else:
        run.process.send_signal(signum)  # kill, docker stop: the process alone
    assert run.wait(60) == code, run.stderr()[-3000:]
    stderr = run.stderr()
    assert "Traceback" not in stderr, stderr[-4000:]
    assert stderr.count("Response time percentiles") == 1, stderr[-4000:]  # the final tables, once
    assert f"INTERRUPTED ({signum.name})" in stderr

    run_dir = run.run_dir()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["interrupted"] is True and metadata["stop_reason"] == signum.name
    assert metadata["exit_code"] == code
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"]["status"] == "INTERRUPTED"  # never PASSED, though its threshold held
    requests = read_stream(run_dir / "requests.arrows")
    failures = requests.num_rows - sum(requests.column("ok").to_pylist())
    assert (requests.num_rows, failures) == aggregated(run_dir)
    assert metadata["locust_totals"] == {"requests": requests.num_rows, "failures": failures}
    assert requests.num_rows >= 50
    assert not list(run.tmpdir.iterdir())  # the embedded service's store is gone too


def test_an_interrupted_distributed_run_counts_every_request_and_leaves_no_temporary_directory(
    tmp_path: Path,
) -> None:
    port = str(free_port())  # not 5557: another test may run a master at the same time
    run = Headless(tmp_path, "-u", "4", "-r", "4", "-t", "60s", "--processes", "2", "--master-bind-port", port,
                   "--master-port", port)  # fmt: skip
    run.wait_for_requests(rows=50)
    os.killpg(run.process.pid, signal.SIGINT)
    assert run.wait(90) == 130, run.stderr()[-3000:]
    assert "Traceback" not in run.stderr(), run.stderr()[-4000:]
    run_dir = run.run_dir()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["interrupted"] is True and metadata["exit_code"] == 130 and len(metadata["workers"]) == 2
    requests = read_stream(run_dir / "requests.arrows")
    assert requests.num_rows == aggregated(run_dir)[0] == metadata["locust_totals"]["requests"]
    assert not list(run.tmpdir.iterdir())  # workers removed their sample directories, the master its store


IDLE_LOCUSTFILE = """
from locust import constant, task

import harness.plugin  # noqa: F401
from harness.users import FeatureStoreUser


class IdleUser(FeatureStoreUser):
    wait_time = constant(0.5)

    def on_start(self):
        pass

    @task
    def nothing(self):
        pass
"""


def test_a_run_without_any_request_fails_its_thresholds(tmp_path: Path) -> None:
    locustfile = tmp_path / "idle.py"
    locustfile.write_text(IDLE_LOCUSTFILE)
    run = Headless(tmp_path, "-u", "1", "-r", "1", "-t", "2s", "--threshold", "failure_ratio < 1%",
                   "--sample-interval", "0", "--only-summary", locustfile=str(locustfile))  # fmt: skip
    assert run.wait(90) == THRESHOLD_EXIT_CODE, run.stderr()[-3000:]
    run_dir = run.run_dir()
    assert json.loads((run_dir / "thresholds.json").read_text())["passed"] is False
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["exit_code"] == THRESHOLD_EXIT_CODE and metadata["requests_recorded"] == 0
    assert json.loads((run_dir / "summary.json").read_text())["verdict"]["status"] == "NO REQUESTS"
