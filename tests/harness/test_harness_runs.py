"""Real Locust runs of every scenario against the embedded service: requests made, none failed, a complete run
directory, nothing left behind; thresholds that pass and fail with the right exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.recording.recorder import read_stream
from harness.verdict.thresholds import THRESHOLD_EXIT_CODE  # not harness.plugin: importing locust patches this process
from tests.machine_load import MachineWatch

ROOT = Path(__file__).resolve().parents[2]
RUN_FILES = {
    "metadata.json",
    "requests.arrows",
    "thresholds.json",
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
    "locust_report.html",
    "samples.arrows",
    "host.arrows",
    "sampler.json",
    "report.html",
    "summary.json",
    "summary.md",
}
pytestmark = pytest.mark.slow


def run_locust(
    locustfile: str, runs_dir: Path, *extra: str, seconds: int = 6, users: int = 4, rate: float | None = None
) -> tuple[int, Path, str]:
    """Run a scenario headless against the embedded service; returns (exit code, the run directory, stderr).

    ``rate`` is users started per second (default: all at once)."""
    command = [
        sys.executable, "-m", "locust", "-f", f"locustfiles/{locustfile}", "--headless",
        "-u", str(users), "-r", str(rate or users), "-t", f"{seconds}s", "--runs-dir", str(runs_dir),
        "--catalog-size", "2000", "--only-summary", *extra,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    run_dirs = sorted(p for p in runs_dir.iterdir() if not p.name.startswith("_"))  # not the reports' _assets
    assert len(run_dirs) == 1, result.stderr[-3000:]
    return result.returncode, run_dirs[0], result.stderr


def assert_nothing_left_behind(metadata: dict) -> None:
    service = metadata["embedded_service"]
    assert service is not None
    pid = service["pid"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not Path(service["store_path"]).exists()


@pytest.mark.parametrize(
    ("locustfile", "client"),
    [
        ("concurrent_users.py", "lean"),
        ("memory_pressure.py", "lean"),
        ("cpu_intensive.py", "lean"),
        ("io_intensive.py", "lean"),
        ("io_intensive.py", "locust"),  # Locust's FastHttpSession: every request kind (Arrow PUT, JSON POST, GET)
    ],
)
def test_each_scenario_runs_headless_against_the_embedded_service(tmp_path: Path, locustfile: str, client: str):
    code, run_dir, stderr = run_locust(locustfile, tmp_path, "--http-client", client)
    assert code == 0, stderr[-3000:]
    assert {p.name for p in run_dir.iterdir()} >= RUN_FILES
    metadata = json.loads((run_dir / "metadata.json").read_text())
    requests = read_stream(run_dir / "requests.arrows")
    assert requests.num_rows > 0
    assert requests.num_rows == metadata["locust_totals"]["requests"]
    assert metadata["locust_totals"]["failures"] == 0
    assert all(requests.column("ok").to_pylist())
    names = set(requests.column("name").to_pylist())
    assert not [n for n in names if re.search(r"/\d+(/|$)|frame-[0-9a-f]", n)], names  # grouped: no per-id rows
    assert metadata["environment"]["git"]["commit"] is not None or metadata["environment"]["git"] == {
        "commit": None,
        "dirty": None,
    }
    assert metadata["scenario"] == locustfile.removesuffix(".py")
    cache = json.loads((run_dir / "cache_stats.json").read_text())
    assert cache["source"].startswith("/metrics") and cache["hits"] >= 0 and "one_worker" in cache
    if locustfile == "concurrent_users.py":  # lookups of a cached catalog: nearly all hits
        assert cache["hits"] > 0 and cache["hit_rate"] > 0.5
    assert_nothing_left_behind(metadata)


def test_a_passing_threshold_exits_zero_and_a_failing_one_exits_with_the_threshold_code(tmp_path: Path) -> None:
    code, run_dir, stderr = run_locust(
        "concurrent_users.py", tmp_path / "pass", "--threshold", "failure_ratio < 5%", "--threshold", "p99 < 10s"
    )
    assert code == 0, stderr[-3000:]
    verdict = json.loads((run_dir / "thresholds.json").read_text())
    assert verdict["passed"] is True and len(verdict["results"]) == 2

    code, run_dir, stderr = run_locust(
        "concurrent_users.py", tmp_path / "fail", "--threshold", "p50 < 0.001ms", "--threshold", "rps >= 1"
    )
    assert code == THRESHOLD_EXIT_CODE
    verdict = json.loads((run_dir / "thresholds.json").read_text())
    statuses = {r["threshold"]: r["status"] for r in verdict["results"]}
    assert statuses == {"p50 < 0.001ms": "fail", "rps >= 1": "pass"}
    assert "p50 < 0.001ms" in stderr  # one clear line per failed threshold
    assert_nothing_left_behind(json.loads((run_dir / "metadata.json").read_text()))


def test_a_bad_threshold_is_refused_before_anything_starts(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "locust", "-f", "locustfiles/concurrent_users.py", "--headless", "-t", "2s",
               "--runs-dir", str(tmp_path), "--threshold", "p95 < fast"]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "p95 < fast" in result.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_profile_drives_the_run(tmp_path: Path) -> None:
    code, run_dir, stderr = run_locust("concurrent_users.py", tmp_path, "--profile", "smoke", seconds=60)
    assert code == 0, stderr[-3000:]
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["profile"]["name"] == "smoke"
    assert metadata["thresholds"]  # the profile's own thresholds were judged
    assert json.loads((run_dir / "thresholds.json").read_text())["evaluated"] is True
    assert metadata["duration_s"] < 55  # the shape ended the run, not -t


@pytest.mark.exclusive  # the service must hold >= 90% of a core: another test would take part of it
def test_a_saturating_cpu_intensive_run_names_the_cpu_bound_service(tmp_path: Path, other_load: MachineWatch) -> None:
    """Enough users to saturate the one-worker service: the report's findings must say it is CPU-bound."""
    # 60 users at 10/s: the service saturates by the third second (20 users) and stays so
    code, run_dir, stderr = run_locust("cpu_intensive.py", tmp_path, seconds=14, users=60, rate=10)
    assert code == 0, stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    kinds = {finding["kind"]: finding for finding in summary["findings"]}
    with other_load.judging("the service holding a whole core"):
        assert "cpu_bound" in kinds, (summary["resources"]["service"], summary["findings"])
        evidence = kinds["cpu_bound"]["evidence"]
        assert evidence["saturated_s"] >= 7 and evidence["service_cpu_max_percent"] >= 90
    page = (run_dir / "report.html").read_text()
    assert "CPU-bound" in page and "_assets/plotly-" in page  # plotly.js is shared, not inlined in every report
    assert "CPU-bound" in (run_dir / "summary.md").read_text()
    samples = read_stream(run_dir / "samples.arrows")
    assert {"service", "generator", "host", "sampler"} <= set(samples.column("scope").to_pylist())


STRESS_PROFILE = """
description = "tiny stress search for the tests: +2 users every 3 s up to 8"
shape = "stress"
thresholds = ["p50 < {limit}"]

[params]
start_users = 2
step_users = 2
step_s = 3
max_users = 8
spawn_rate = 4
max_duration_s = 30
"""


@pytest.mark.parametrize("limit, stopped_because", [("0.001ms", "breach"), ("10s", "max_users")])
def test_the_stress_profile_reports_the_highest_load_held(tmp_path: Path, limit: str, stopped_because: str) -> None:
    profile = tmp_path / "tiny_stress.toml"
    profile.write_text(STRESS_PROFILE.format(limit=limit))
    code, run_dir, stderr = run_locust("concurrent_users.py", tmp_path / "runs", "--profile", str(profile), seconds=60)
    found = json.loads((run_dir / "metadata.json").read_text())["shape_result"]
    assert found["stopped_because"] == stopped_because, stderr[-2000:]
    assert "Stress: highest load held within the SLO" in stderr or "Stress: no step held" in stderr
    if stopped_because == "breach":
        assert found["highest_ok_users"] == 0 and found["breached_at_users"] == 2
        assert found["breach"] and "p50 < 0.001ms" in found["breach"]
        assert code == THRESHOLD_EXIT_CODE  # the final verdict fails the same threshold
    else:
        assert found["highest_ok_users"] == 8 and found["highest_ok_rps"] > 0
        assert code == 0


def test_the_web_ui_runs_the_profile_named_in_its_form(tmp_path: Path) -> None:
    """Interactive use: the web UI's profile field picks the load profile of the next run."""
    import signal
    import time
    import urllib.parse
    import urllib.request

    from service.launcher import free_port

    port = free_port()
    command = [
        sys.executable, "-m", "locust", "-f", "locustfiles/concurrent_users.py", "--web-host", "127.0.0.1",
        "--web-port", str(port), "--runs-dir", str(tmp_path), "--catalog-size", "2000",
    ]  # fmt: skip
    locust = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def call(path: str, form: dict[str, str] | None = None) -> dict:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        with urllib.request.urlopen(base + path, data=data, timeout=10) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 60
        while True:  # the UI answers once the embedded service and its catalog are up
            try:
                call("/stats/requests")
                break
            except OSError:
                assert time.monotonic() < deadline and locust.poll() is None, "the web UI never came up"
                time.sleep(0.2)
        refused = call("/swarm", {"user_count": "2", "spawn_rate": "2", "profile": "no-such-profile"})
        assert refused["success"] is False and "no-such-profile" in refused["message"]
        started = call("/swarm", {"user_count": "1", "spawn_rate": "1", "profile": "smoke"})
        assert started["success"] is True and "shape" in started["message"], started
        deadline = time.monotonic() + 60
        while call("/stats/requests")["state"] != "stopped":  # the smoke shape ends its own run after 10 s
            assert time.monotonic() < deadline, "the profile's shape never ended the run"
            time.sleep(0.5)
    finally:
        locust.send_signal(signal.SIGTERM)
        stderr = locust.communicate(timeout=60)[1]
    (run_dir,) = [p for p in tmp_path.iterdir() if not p.name.startswith("_")]  # not the reports' _assets
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["profile"]["name"] == "smoke", stderr[-2000:]
    assert metadata["locust_totals"]["requests"] > 0
    assert json.loads((run_dir / "thresholds.json").read_text())["evaluated"] is True
    assert_nothing_left_behind(metadata)


OWN_SHAPE_LOCUSTFILE = """
from locust import LoadTestShape, constant, task

import harness.plugin  # noqa: F401
from harness.users import FeatureStoreUser


class PingUser(FeatureStoreUser):
    wait_time = constant(0.1)

    def on_start(self):
        pass

    @task
    def ping(self):
        self.request_json("GET", "/v1/ping", name="/v1/ping")


class TwoUsersForThreeSeconds(LoadTestShape):
    def tick(self):
        return (2, 2) if self.get_run_time() < 3 else None
"""


def test_a_locustfile_with_its_own_shape_keeps_it_without_a_profile(tmp_path: Path) -> None:
    locustfile = tmp_path / "own_shape.py"
    locustfile.write_text(OWN_SHAPE_LOCUSTFILE)
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--runs-dir",
               str(tmp_path / "runs"), "--catalog-size", "500", "--only-summary"]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("_")]  # not _assets
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["profile"] is None
    assert metadata["duration_s"] < 20  # the locustfile's shape ended the run (there is no -t)
    assert metadata["locust_totals"]["requests"] > 0
