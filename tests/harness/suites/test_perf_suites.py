"""Seed 000's suites as a user runs them: the load_tests entry points, a --profile-cpu window, the profilers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.profiling.cpu_profile import parse_window

ROOT = Path(__file__).resolve().parents[3]
LOAD_TESTS = ROOT / "tests" / "performance" / "load_tests"


def _locust(runs: Path, target: str, *extra: str, seconds: int = 3) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        target,
        "--headless",
        "-u",
        "6",
        "-r",
        "6",
        "-t",
        f"{seconds}s",
        "--runs-dir",
        str(runs),
        "--catalog-size",
        "2000",
        "--only-summary",
        *extra,
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)


def _python(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from the project's root, its output captured."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _run_dir(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir() if not p.name.startswith("_")]
    return run_dir


def test_load_test_entry_points_import_the_scenarios_user_classes_without_copying_them() -> None:
    for name, user in (
        ("concurrent_users", "OnlineLookupUser"),
        ("memory_pressure", "MemoryPressureUser"),
        ("cpu_intensive", "FeatureEngineeringUser"),
        ("io_intensive", "IoIntensiveUser"),
    ):
        text = (LOAD_TESTS / f"test_{name}.py").read_text()
        assert f"from locustfiles.{name} import {user}" in text
        assert "@task" not in text and "\nclass " not in text


@pytest.mark.slow
@pytest.mark.parametrize(
    "target", ["tests/performance/load_tests/test_concurrent_users.py", "tests/performance/load_tests/"]
)
def test_the_seeds_locust_command_runs_a_file_or_the_whole_directory(tmp_path: Path, target: str) -> None:
    result = _locust(tmp_path, target)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((_run_dir(tmp_path) / "summary.json").read_text())
    assert summary["headline"]["requests"] > 0


def test_profile_window_parses_durations_and_delays() -> None:
    assert parse_window("10s") == (10.0, 0.0)
    assert parse_window("500ms@1m") == (0.5, 60.0)
    assert parse_window("") == parse_window("0") == (0.0, 0.0)
    with pytest.raises(ValueError, match="not a duration"):
        parse_window("ten seconds")


@pytest.mark.slow
def test_profile_cpu_records_the_service_with_py_spy_into_the_run_and_its_report(tmp_path: Path) -> None:
    result = _locust(tmp_path, "locustfiles/concurrent_users.py", "--profile-cpu", "2s@1s", seconds=5)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = _run_dir(tmp_path)
    summary = json.loads((run_dir / "profile_summary.json").read_text())
    if summary.get("error"):
        pytest.skip(f"py-spy cannot profile here: {summary['error']}")
    assert summary["source"] == "py-spy" and summary["total"] > 0 and summary["top_self"]
    assert {"profile.svg", "profile.speedscope.json", "profile.collapsed"} <= {p.name for p in run_dir.iterdir()}
    assert "Where the time goes" in (run_dir / "report.html").read_text()


@pytest.mark.slow
def test_cpu_profiler_falls_back_to_cprofile_inside_the_service(tmp_path: Path) -> None:
    result = _python(
        "tests/performance/profiling/cpu_profiler.py",
        "--cprofile",
        "--users",
        "6",
        "--seconds",
        "3",
        "--catalog-size",
        "2000",
        "--runs-dir",
        str(tmp_path),
        timeout_s=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((_run_dir(tmp_path) / "profile_summary.json").read_text())
    assert summary["source"] == "cProfile" and summary["total"] > 0
    assert "top by self" in result.stdout


@pytest.mark.slow
def test_the_seeds_memory_profiler_command_reports_allocation_sites_and_growth(tmp_path: Path) -> None:
    result = _python(
        "-m",
        "memory_profiler",
        "tests/performance/profiling/memory_profiler.py",
        "--rounds",
        "2",
        "--megabytes",
        "8",
        "--catalog",
        "2000",
        "--runs-dir",
        str(tmp_path),
        timeout_s=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Mem usage" in result.stdout  # memory_profiler's line-by-line table of pressure()
    profile = json.loads((_run_dir(tmp_path) / "memory_profile.json").read_text())
    assert profile["top_sites"] and len(profile["traced_bytes"]) == 3


def test_gpu_profiler_says_plainly_when_there_is_no_gpu(tmp_path: Path) -> None:
    result = _python(
        "tests/performance/profiling/gpu_profiler.py", "--seconds", "0.2", "--runs-dir", str(tmp_path), timeout_s=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("no GPU: ") or " samples at " in result.stdout


def test_performance_reporter_script_writes_the_three_files(tmp_path: Path) -> None:
    result = _python(
        "tests/performance/profiling/performance_reporter.py",
        "--runs-dir",
        str(tmp_path),
        "--benchmarks",
        str(tmp_path / "none"),
        timeout_s=60,
    )
    assert result.returncode == 0, result.stderr
    out = _run_dir(tmp_path)
    assert {"performance_report.html", "performance_report.md", "performance_report.json"} <= {
        p.name for p in out.iterdir()
    }
    assert "## Bottlenecks identified" in result.stdout and "## Optimization suggestions" in result.stdout
