"""How the harness fails when something around it fails: the report child that never ends (the verdict is still
printed), a service answering 500 to the catalog read (not "no catalog"), a --runs-dir with no room (a run that
cannot record its verdict is never a pass: exit code 2, one line, no temporary file)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.locust_runs import start_locust
from tests.unpatched import locust_unpatched

with locust_unpatched():  # Locust's classes without a gevent-patched pytest process
    from harness.locust_side import run as run_module
    from harness.recording.rundir import RunDirectory
    from harness.users import catalog_ids, judge_outcome


@pytest.fixture
def answering() -> Iterator[object]:
    """``answering(status, body)``: a loopback HTTP server answering every GET with ``status`` and ``body``."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, body: bytes) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_500_to_the_catalog_read_is_not_called_a_missing_catalog(answering) -> None:  # type: ignore[no-untyped-def]
    host = answering(500, b'{"error": "internal", "detail": "store unreadable"}')
    with pytest.raises(RuntimeError) as failed:
        catalog_ids(host)
    message = str(failed.value)
    assert "answered 500" in message and "store unreadable" in message
    assert "no catalog" not in message and "--load-catalog" not in message


def test_a_404_to_the_catalog_read_asks_for_a_catalog(answering) -> None:  # type: ignore[no-untyped-def]
    host = answering(404, b'{"error": "not_found", "detail": "no feature tmdb/movie_features"}')
    with pytest.raises(RuntimeError, match="answered 404: the service has no catalog; load one with --load-catalog"):
        catalog_ids(host)


def test_a_report_child_that_times_out_is_logged_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """build_report(in_child=True) let subprocess.TimeoutExpired escape: the web UI run's verdict was never printed."""
    monkeypatch.setattr(run_module, "REPORT_TIMEOUT_S", 0.01)  # the child cannot even start its interpreter by then
    run = SimpleNamespace(
        run_dir=RunDirectory(tmp_path, "scenario"), report_summary=None, report=None, record_error=None
    )
    with caplog.at_level(logging.ERROR, logger="featureload"):
        run_module.RunContext.build_report(run, in_child=True)  # type: ignore[arg-type]
    assert run.report_summary is None
    assert any("not done after 0.01 s" in r.getMessage() for r in caplog.records), caplog.text


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted on a fresh directory (unmounted afterwards); skipped where mounting is not allowed."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root and CAP_SYS_ADMIN needed): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave_bytes: int) -> None:
    """Fill ``disk`` until at most ``leave_bytes`` are free."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as handle:
        handle.write(bytes(max(0, free - leave_bytes)))
    assert shutil.disk_usage(disk).free <= leave_bytes + 8192


def run_on(runs_dir: Path) -> tuple[int, str]:
    """A short real run with a threshold it breaches (exit code 3 on a disk with room)."""
    process = start_locust(runs_dir, "-u", "5", "-r", "5", "-t", "2s", "--catalog-size", "300",
                           "--threshold", "p95 < 0.001ms")  # fmt: skip
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def assert_not_recorded(code: int, stderr: str, disk: Path) -> None:
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    said = [line for line in stderr.splitlines() if "No space left on device" in line]
    assert len(said) == 1, stderr[-3000:]  # one line says why
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]
    assert "PASSED" not in stderr and "exit code 0" not in stderr


def test_a_full_runs_dir_is_refused_before_the_run(small_disk: Path) -> None:
    fill(small_disk, leave_bytes=0)
    code, stderr = run_on(small_disk / "runs")
    assert_not_recorded(code, stderr, small_disk)
    assert "--runs-dir" in next(line for line in stderr.splitlines() if "No space left" in line)


def test_a_runs_dir_that_fills_during_the_run_exits_2_never_passed(small_disk: Path) -> None:
    """Room for the start (the preflight's probe, the request log) but not for the run's files (Locust's HTML
    report alone is about 1 MB): the verdict cannot be written, so the run is not a pass (it was exit 0)."""
    fill(small_disk, leave_bytes=300 * 1024)
    code, stderr = run_on(small_disk / "runs")
    assert_not_recorded(code, stderr, small_disk)
    assert "Verdict: NOT RECORDED (exit code 2" in stderr


def test_one_judgement_names_each_failure_as_both_transports_record_it() -> None:
    """judge_outcome is what request_json (FastHttpSession) and the lean transport both record."""
    refused = ConnectionRefusedError(111, "Connection refused")

    def judge(status: int | None, error: object = None, text: str = "", body: str = "{}", check: Any = None) -> Any:
        return judge_outcome(status, error, lambda: text, lambda: json.loads(body), check)

    assert judge(0, refused) == (None, refused)  # the cause itself, never "HTTP 0"
    assert judge(None, "timed out") == (None, "no answer: timed out")
    assert judge(0) == (None, "no answer: connection lost")
    assert judge(503, text="x" * 300) == (None, "HTTP 503: " + "x" * 200)
    assert judge(200, body="not json") == (None, "the body is not JSON")
    assert judge(200, body='{"a": 1}', check=lambda b: "no b" if "b" not in b else None) == (None, "no b")
    assert judge(201, body='{"a": 1}', check=lambda b: None) == ({"a": 1}, None)
