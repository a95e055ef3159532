"""harness.locust_side.preflight: a run that cannot work stops at once, before any user spawns, with exactly one error
line saying what is wrong and what to do, and exit code 2. Real ``locust`` processes, real services."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.launcher import free_port
from tests.conftest import ServiceFactory

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def locust(tmp_path: Path, *args: str, locustfile: str = "concurrent_users.py") -> tuple[int, list[str], float]:
    """Run a headless scenario; returns (exit code, the ERROR lines of its output, seconds it took)."""
    command = [sys.executable, "-m", "locust", "-f", f"locustfiles/{locustfile}", "--headless", "-u", "3", "-r", "3",
               "-t", "300s", "--runs-dir", str(tmp_path / "runs"), "--catalog-size", "500", *args]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if "ERROR" in line]
    return result.returncode, errors, time.monotonic() - started


def assert_refused(result: tuple[int, list[str], float], *expected: str) -> str:
    code, errors, seconds = result
    assert code == 2, errors
    assert len(errors) == 1, errors
    # far below the -t of 300 s: refused before the run, not after it (a loaded machine took 18 s to start Locust)
    assert seconds < 90, f"took {seconds:.1f} s: the run was started, not refused"
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("extra", [[], ["--load-catalog"]])
def test_an_unreachable_host_is_one_line_naming_host_and_cause(tmp_path: Path, extra: list[str]) -> None:
    host = f"http://127.0.0.1:{free_port()}"  # closed: bound, then released
    line = assert_refused(locust(tmp_path, "-H", host, *extra), f"cannot reach the service at {host}",
                          "connection refused")  # fmt: skip
    assert "embedded" not in line.split("cannot reach", 1)[1].split(":", 1)[0]  # no embedded service to blame


def test_a_host_without_scheme_says_how_to_write_it(tmp_path: Path) -> None:
    assert_refused(locust(tmp_path, "-H", "127.0.0.1:8000"), "-H 127.0.0.1:8000 has no scheme",
                   "-H http://127.0.0.1:8000")  # fmt: skip


def test_a_service_without_catalog_asks_for_load_catalog(tmp_path: Path, service_factory: ServiceFactory) -> None:
    service = service_factory()
    assert_refused(locust(tmp_path, "-H", service.base_url), f"the service at {service.base_url} has no catalog",
                   "add --load-catalog")  # fmt: skip


def test_closed_reads_ask_for_the_read_token(tmp_path: Path, service_factory: ServiceFactory) -> None:
    service = service_factory(read_token="r" * 24, write_token="w" * 24)
    # io_intensive needs no catalog: the read probe alone finds the closed reads
    result = locust(tmp_path, "-H", service.base_url, locustfile="io_intensive.py")
    assert_refused(result, "closed its reads (401 to GET /v1/groups)", "add --read-token")


def test_a_write_refused_by_load_catalog_asks_for_the_write_token(
    tmp_path: Path, service_factory: ServiceFactory
) -> None:
    service = service_factory(write_token="w" * 24)
    line = assert_refused(locust(tmp_path, "-H", service.base_url, "--load-catalog"),
                          "--load-catalog could not load the catalog into", "add --write-token")  # fmt: skip
    assert "embedded service" not in line


def _read_only_dir(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through permission bits: use a place nobody may create directories in
        return Path("/sys/featureload-runs")
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--threshold", "GET /nope: p95 < 5ms"], "names an unknown endpoint 'GET /nope'; this locustfile's requests "
         "are: GET /v1/groups/{group}/features/{feature} [page], GET /v1/online/{group}/{feature}/{entity_id}"),
        (["--threshold", "failure_ratio < 1"], "failure_ratio needs the % sign: write 1%"),
        (["--sample-interval", "-1"], "--sample-interval -1: seconds between resource samples must be >= 0"),
        (["--catalog-size", "0"], "--catalog-size 0: the catalog needs at least 1 movie"),
        (["--service-workers", "0"], "--service-workers 0: the embedded service needs at least 1 uvicorn worker"),
        (["--profile", "nope"], "nope"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_in_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    assert_refused(locust(tmp_path, *args), expected)


def test_a_read_only_runs_dir_is_refused(tmp_path: Path) -> None:
    runs_dir = _read_only_dir(tmp_path)
    assert_refused(locust(tmp_path, "--runs-dir", str(runs_dir)), f"--runs-dir {runs_dir} is not writable")


def test_an_unknown_scenario_lists_the_available_ones() -> None:
    result = subprocess.run(["make", "-s", "scenario-check", "SCENARIO=nope"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2
    assert "unknown scenario 'nope': choose one of: concurrent_users cpu_intensive io_intensive memory_pressure" in (
        result.stderr
    )
    # plain locust -f of a missing file: Locust's own one line
    missing = subprocess.run([sys.executable, "-m", "locust", "-f", "locustfiles/nope.py", "--headless"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert missing.returncode != 0
    assert "Could not find 'locustfiles/nope.py'" in missing.stderr
