"""Distributed runs as compose runs them, but as local processes: a service, a Locust master, two workers.

Also checks the compose file itself with Debian's docker-compose (no Docker engine runs here).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from harness.recording.recorder import read_stream
from service.launcher import free_port, start_service
from tests.locust_runs import SPAWNED_LINES, start_locust

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class LocustProcess:
    """A Locust process whose stderr is collected line by line, so a test can wait for a log line."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "locust", "-f", "locustfiles/concurrent_users.py", *args]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._seen = threading.Condition()
        threading.Thread(target=self._collect, daemon=True).start()
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # type: ignore[union-attr]

    def _collect(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for_line(self, text: str | tuple[str, ...], timeout_s: float) -> None:
        """Wait for a line holding ``text`` (or any of several)."""
        texts = (text,) if isinstance(text, str) else text
        deadline = time.monotonic() + timeout_s
        with self._seen:
            while not any(t in line for line in self.lines for t in texts):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no line with {text!r} within {timeout_s} s:\n{''.join(self.lines[-30:])}"
                exited = self.process.poll()
                assert exited is None, f"exit {exited} before a line with {text!r}:\n{''.join(self.lines[-30:])}"
                self._seen.wait(min(remaining, 1.0))  # wakes on each line, and each second to see an exit

    def stderr(self) -> str:
        with self._seen:
            return "".join(self.lines)


@pytest.fixture
def catalog_service(tmp_path: Path):
    with start_service({}, tmp_path / "store") as service:
        yield service


def start_cluster(base_url: str, runs_dir: Path, workers: int, *master_args: str) -> tuple[LocustProcess, list]:
    port = free_port()
    master = LocustProcess(
        "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--expect-workers",
        str(workers), "--headless", "-H", base_url, "--load-catalog", "--catalog-size", "2000", "--runs-dir",
        str(runs_dir), "--only-summary", *master_args,
    )  # fmt: skip
    worker_list = [
        LocustProcess("--worker", "--master-host", "127.0.0.1", "--master-port", str(port)) for _ in range(workers)
    ]
    return master, worker_list


def finish(master: LocustProcess, workers: list[LocustProcess]) -> int:
    code = master.process.wait(timeout=120)
    for worker in workers:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
    return code


def test_master_with_two_workers_runs_the_profile_and_merges_their_requests(catalog_service, tmp_path: Path) -> None:
    master, workers = start_cluster(catalog_service.base_url, tmp_path / "runs", 2, "--profile", "smoke")
    code = finish(master, workers)
    assert code == 0, master.stderr()[-3000:]
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("_")]  # not _assets
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["runner"] == "MasterRunner"
    assert len(metadata["workers"]) == 2
    assert metadata["workers_lost"] == []
    assert metadata["profile"]["name"] == "smoke"
    assert metadata["external_catalog"]["already_loaded"] is False
    requests = read_stream(run_dir / "requests.arrows")
    assert set(requests.column("worker").to_pylist()) == set(metadata["workers"])
    # The master's request log holds every request the workers reported to Locust's own statistics.
    assert requests.num_rows == metadata["locust_totals"]["requests"] > 0
    assert json.loads((run_dir / "thresholds.json").read_text())["passed"] is True
    # The master's sampler followed the master; each worker sampled itself and shipped its rows.
    samples = read_stream(run_dir / "samples.arrows")
    generator_pids = {p for p, s in zip(samples.column("pid").to_pylist(), samples.column("scope").to_pylist(),
                                        strict=True) if s == "generator"}  # fmt: skip
    assert len(generator_pids) >= 3, generator_pids
    assert not (run_dir / "worker_samples.arrows").exists()  # merged into samples.arrows


def test_a_worker_killed_mid_run_is_recorded_and_the_run_goes_on(catalog_service, tmp_path: Path) -> None:
    master, workers = start_cluster(catalog_service.base_url, tmp_path / "runs", 2, "-u", "4", "-r", "4", "-t", "12s")
    master.wait_for_line(SPAWNED_LINES, timeout_s=180)  # a busy machine starts workers slowly
    workers[0].process.send_signal(signal.SIGKILL)
    code = finish(master, workers)
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("_")]  # not _assets
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert len(metadata["workers_lost"]) == 1, master.stderr()[-3000:]
    assert metadata["duration_s"] >= 10  # the run went on to its end
    survivor = (set(metadata["workers"]) - set(metadata["workers_lost"])).pop()
    assert survivor in set(read_stream(run_dir / "requests.arrows").column("worker").to_pylist())
    assert code in (0, 1), master.stderr()[-3000:]  # failures from the lost worker's in-flight requests may count


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="installed by `make system-deps` (Debian docker-compose)"
)
def test_the_compose_file_is_valid() -> None:
    assert shutil.which("docker-compose"), "docker-compose is missing: `make system-deps` installs Debian's package"
    command = ["docker-compose", "-f", "docker-compose.yml", "config"]
    environ = {k: v for k, v in os.environ.items() if k != "FEATURELOAD_WRITE_TOKEN"}
    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, env=environ)
    assert refused.returncode != 0, "compose must refuse to start the service without a write token"
    assert "set FEATURELOAD_WRITE_TOKEN" in refused.stderr
    environ["FEATURELOAD_WRITE_TOKEN"] = "planted-compose-token"
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, env=environ)
    assert result.returncode == 0, result.stderr
    assert "worker" in result.stdout and "master" in result.stdout and "service" in result.stdout
    assert "FEATURESTORE_WRITE_TOKEN: planted-compose-token" in result.stdout  # the service's writes are closed
    published = re.findall(r"^\s*-\s*(\S*:?\d+:\d+)", result.stdout, re.M)
    assert published == ["127.0.0.1:8089:8089"], published  # only the web UI, and only on loopback


def _requests_served(base_url: str) -> int:
    """Online lookups the service counted (its /metrics)."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("featurestore_requests_total{") and 'route="/v1/online/' in line)  # fmt: skip


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _poll(condition, timeout_s: float, context=lambda: "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s: {context()}"
        time.sleep(0.05)


def test_forked_workers_stop_within_seconds_of_a_killed_master(catalog_service, tmp_path: Path) -> None:
    """`--processes 2` and the master SIGKILLed: its workers went on sending the full load for about a minute
    (until Locust's heartbeat gave up). They die with it now, as the embedded service does."""
    port = str(free_port())
    master = start_locust(tmp_path / "runs", "-H", catalog_service.base_url, "--load-catalog", "--catalog-size", "500",
                          "-u", "4", "-r", "4", "-t", "60s", "--processes", "2", "--master-bind-port", port,
                          "--master-port", port)  # fmt: skip
    try:
        workers: list[int] = []

        def forked() -> bool:
            workers[:] = [c.pid for c in psutil.Process(master.pid).children() if "locust" in " ".join(c.cmdline())]
            return len(workers) == 2

        _poll(forked, 60)
        first = _requests_served(catalog_service.base_url)
        _poll(lambda: _requests_served(catalog_service.base_url) > first + 20, 60)  # the workers send load
        master.send_signal(signal.SIGKILL)
        master.wait(timeout=10)
        _poll(lambda: not _alive(workers), 5, lambda: _alive(workers))
        after = _requests_served(catalog_service.base_url)
        assert _requests_served(catalog_service.base_url) == after  # nothing sends any more
    finally:
        for pid in [master.pid, *_alive(workers)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        master.communicate(timeout=30)
