"""The harness when things die: every process a run starts dies with the run, whatever was killed; the temporary
store goes too; a service that dies mid-run is named in the report with when and why; the real exit code is
recorded. Real Locust runs, real uvicorn processes; every wait polls a condition against a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from harness.recording.recorder import read_stream
from service.launcher import free_port
from tests.locust_runs import spawning_done

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Run:
    """``locust -f locustfiles/<file> --headless ...`` with a private TMPDIR; stderr collected line by line."""

    def __init__(self, tmp_path: Path, locustfile: str, *args: str) -> None:
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir(parents=True)
        self.runs_dir = tmp_path / "runs"
        command = [sys.executable, "-m", "locust", "-f", f"locustfiles/{locustfile}", "--headless", "--runs-dir",
                   str(self.runs_dir), "--catalog-size", "1000", "--only-summary", *args]  # fmt: skip
        env = {**os.environ, "TMPDIR": str(self.tmpdir)}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self.lines.append(line)

    def stderr(self) -> str:
        return "".join(self.lines)

    def run_dir(self) -> Path:
        (path,) = [p for p in self.runs_dir.iterdir() if not p.name.startswith("_")]  # not the reports' _assets
        return path

    def wait(self, timeout_s: float = 120) -> int:
        code = self.process.wait(timeout=timeout_s)
        return code

    def service(self, workers: int, timeout_s: float = 60) -> tuple[psutil.Process, list[psutil.Process]]:
        """The embedded service's master and its uvicorn workers, once the users are all spawned."""
        wait_for(lambda: spawning_done(self.stderr()), timeout_s, lambda: self.stderr()[-3000:])
        masters = [c for c in psutil.Process(self.process.pid).children() if c.cmdline()[1:3] == ["-m", "service"]]
        assert len(masters) == 1, [c.cmdline() for c in psutil.Process(self.process.pid).children()]
        wait_for(lambda: len(_python_children(masters[0])) == workers, 30, lambda: masters[0].children())
        return masters[0], _python_children(masters[0])

    def wait_for_requests(self, timeout_s: float = 30) -> None:
        """Until the request log holds at least one flushed chunk."""

        def logged() -> bool:
            try:
                return read_stream(self.run_dir() / "requests.arrows").num_rows > 0
            except (ValueError, OSError):
                return False

        wait_for(logged, timeout_s, lambda: self.stderr()[-3000:])


def _python_children(process: psutil.Process) -> list[psutil.Process]:
    """uvicorn's worker processes (spawned; multiprocessing's resource tracker, also a child, is left out)."""
    try:
        return [c for c in process.children() if "spawn_main" in " ".join(c.cmdline())]
    except psutil.Error:
        return []


def wait_for(condition: Callable[[], bool], timeout_s: float, context: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s: {context()}"
        time.sleep(0.1)


def gone(processes: list[psutil.Process]) -> bool:
    """Every process has exited (a zombie not yet reaped by its parent counts as exited)."""
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_a_killed_service_master_takes_its_workers_and_the_report_says_when_and_why(tmp_path: Path) -> None:
    run = Run(tmp_path, "concurrent_users.py", "-u", "4", "-r", "4", "-t", "8s", "--service-workers", "2")
    master, workers = run.service(workers=2)
    run.wait_for_requests()
    master.send_signal(signal.SIGKILL)
    wait_for(lambda: gone(workers), 10, lambda: [(w.pid, w.cmdline()) for w in workers if w.is_running()])

    code = run.wait()
    assert code == 1, run.stderr()[-3000:]  # requests failed after the kill
    run_dir = run.run_dir()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["exit_code"] == 1
    assert metadata["embedded_service"]["exit"]["returncode"] == -signal.SIGKILL
    summary = json.loads((run_dir / "summary.json").read_text())
    findings = {f["kind"]: f for f in summary["findings"]}
    assert "service_unreachable" in findings, summary["findings"]
    outage = findings["service_unreachable"]
    assert outage["severity"] == "critical"
    evidence = outage["evidence"]
    assert 0 < evidence["from_s"] <= evidence["to_s"] <= summary["duration_s"] + 1
    assert evidence["endpoints_failed"] == evidence["endpoints_requested"] >= 2
    assert any("ConnectionRefusedError: [Errno 111] Connection refused" in e for e in evidence["errors"]), evidence
    assert "unreachable" in outage["message"] and "Connection refused" in outage["message"]
    assert "failures_concentrated" not in findings  # every endpoint failed: not one endpoint's problem
    assert not [f for f in summary["failures"] if f["error"].startswith("CatchResponseError: HTTP 0")]
    report = (run_dir / "report.html").read_text()
    assert "unreachable" in report and "Connection refused" in report
    assert not list(run.tmpdir.iterdir())  # the temporary store went at the end


def test_a_killed_locust_takes_the_service_tree_and_the_sampler_and_leaves_no_store(tmp_path: Path) -> None:
    run = Run(tmp_path, "concurrent_users.py", "-u", "2", "-r", "2", "-t", "60s", "--service-workers", "2")
    master, workers = run.service(workers=2)
    samplers = [c for c in psutil.Process(run.process.pid).children() if "harness.sampling.sampler" in c.cmdline()]
    assert len(samplers) == 1
    assert list(run.tmpdir.iterdir()), "the embedded service's store should be in the run's TMPDIR"
    tree = [master, *workers, *samplers]

    run.process.send_signal(signal.SIGKILL)
    run.process.wait(timeout=10)
    wait_for(lambda: gone(tree), 15, lambda: [(p.pid, p.cmdline()) for p in tree if not gone([p])])
    wait_for(lambda: not list(run.tmpdir.iterdir()), 15, lambda: list(run.tmpdir.iterdir()))


def test_the_metadata_records_the_real_exit_code(tmp_path: Path) -> None:
    ok = Run(tmp_path / "ok", "cpu_intensive.py", "-u", "2", "-r", "2", "-t", "2s", "--sample-interval", "0")
    assert ok.wait() == 0, ok.stderr()[-3000:]
    assert json.loads((ok.run_dir() / "metadata.json").read_text())["exit_code"] == 0

    # A breached threshold: Locust's own code would be 0, the harness's is 3, and metadata must say 3.
    breached = Run(tmp_path / "breached", "cpu_intensive.py", "-u", "2", "-r", "2", "-t", "2s", "--sample-interval",
                   "0", "--threshold", "p50 < 0.001ms")  # fmt: skip
    assert breached.wait() == 3, breached.stderr()[-3000:]
    summary = json.loads((breached.run_dir() / "summary.json").read_text())
    assert json.loads((breached.run_dir() / "metadata.json").read_text())["exit_code"] == 3
    assert summary["environment"]["exit_code"] == 3
    # (A run whose service dies records 1: see test_a_killed_service_master_takes_its_workers_and_the_report_says_...;
    # A host that cannot be reached is refused before the run, with 2: tests/harness/locust_side/test_preflight.py.)


def test_distributed_workers_leave_no_temporary_directories(tmp_path: Path) -> None:
    port = str(free_port())  # not Locust's default 5557: another test may run a master at the same time
    run = Run(tmp_path, "concurrent_users.py", "-u", "2", "-r", "2", "-t", "3s", "--processes", "2",
              "--master-bind-port", port, "--master-port", port)  # fmt: skip
    assert run.wait() == 0, run.stderr()[-3000:]
    metadata = json.loads((run.run_dir() / "metadata.json").read_text())
    assert len(metadata["workers"]) == 2
    assert not list(run.tmpdir.iterdir())
