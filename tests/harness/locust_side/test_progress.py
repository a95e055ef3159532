"""harness.locust_side.progress: the one progress line of a headless run, the end-of-run verdict lines, and `make run`
with thresholds reporting the harness's exit code."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.locust_side.progress import Progress, ProgressFigures, end_lines, format_clock, progress_line

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (59.6, "1:00"), (125, "2:05"), (3725, "1:02:05")])
def test_format_clock(seconds: float, text: str) -> None:
    assert format_clock(seconds) == text


def test_progress_line_shows_time_users_rate_p95_and_failures() -> None:
    figures = ProgressFigures(elapsed_s=42, remaining_s=18, users=100, rps=812.44, p95_ms=14.2, requests=30_000,
                              failures=3)  # fmt: skip
    assert progress_line(figures) == (
        "progress 0:42 elapsed, 0:18 left | 100 users | 812.4 req/s | p95 14 ms | 3 failures (0.01%)"
    )
    open_ended = ProgressFigures(elapsed_s=5, remaining_s=None, users=0, rps=0, p95_ms=None, requests=0, failures=0)
    assert progress_line(open_ended) == "progress 0:05 elapsed | 0 users | 0.0 req/s | p95 - | 0 failures (0.00%)"


class _Total:
    num_requests, num_failures, current_rps = 200, 10, 20.0

    def get_current_response_time_percentile(self, percent: float) -> int:
        assert percent == 0.95
        return 7


def _environment() -> SimpleNamespace:
    return SimpleNamespace(runner=SimpleNamespace(stats=SimpleNamespace(total=_Total()), user_count=4))


def test_on_a_terminal_the_line_is_rewritten_in_place() -> None:
    now = [100.0]
    stream = io.StringIO()
    progress = Progress(_environment(), stream, planned_s=lambda: 60.0, is_tty=True, clock=lambda: now[0])
    progress.start()
    now[0] = 130.0
    progress.write()
    progress.write()
    progress.stop()
    line = "progress 0:30 elapsed, 0:30 left | 4 users | 20.0 req/s | p95 7 ms | 10 failures (5.00%)"
    assert stream.getvalue() == f"\r\033[K{line}\r\033[K{line}\n"


def test_elsewhere_each_write_is_a_plain_line_every_ten_seconds() -> None:
    stream = io.StringIO()
    progress = Progress(_environment(), stream, planned_s=lambda: None, is_tty=False, clock=lambda: 0.0)
    assert progress.interval_s == 10.0
    progress.write()
    progress.stop()
    assert stream.getvalue().endswith("p95 7 ms | 10 failures (5.00%)\n") and "\r" not in stream.getvalue()


def test_end_lines_give_the_verdict_the_exit_code_and_each_finding_with_its_suggestion() -> None:
    finding = SimpleNamespace(severity="warning", message="service CPU at 98% while p95 rose 4x",
                              suggestion="add uvicorn workers (--service-workers)")  # fmt: skip
    assert end_lines("FAILED", 3, [finding]) == [
        "Verdict: FAILED (exit code 3: threshold breached or not measurable)",
        "  finding (warning): service CPU at 98% while p95 rose 4x",
        "    suggestion: add uvicorn workers (--service-workers)",
    ]
    assert end_lines(None, 0, []) == ["Verdict: NOT RECORDED (exit code 0: passed)"]


@pytest.mark.slow
def test_make_run_with_a_breached_threshold_shows_progress_and_reports_exit_code_3(tmp_path: Path) -> None:
    env = {**os.environ, "FEATURELOAD_RUNS_DIR": str(tmp_path / "runs"), "FEATURELOAD_CATALOG_SIZE": "500"}
    command = ["make", "--no-print-directory", "run", "USERS=2", "RATE=2", "DURATION=12s",
               "THRESHOLDS=p95 < 0.001ms;failure_ratio < 50%"]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]  # make's own status for a failed recipe
    assert "Error 3" in result.stderr  # make names the command's status
    assert "locust -f locustfiles/concurrent_users.py --headless -u 2 -r 2 -t 12s --threshold" in output
    assert "Verdict: FAILED (exit code 3: threshold breached or not measurable)" in result.stderr
    assert "FAIL  p95 < 0.001ms" in result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress ")]
    assert progress and " elapsed, " in progress[0] and " req/s | p95 " in progress[0], result.stderr[-3000:]
    assert "# reqs" not in output.split("--run-time limit reached")[0]  # no periodic Locust table before the end
