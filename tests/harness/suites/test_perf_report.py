"""harness.suites.perf_report: suggestions come from the data with their evidence, never from a canned list."""

from __future__ import annotations

import json
from pathlib import Path

from harness.suites.perf_report import build_performance_report, collect, derive


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_an_empty_runs_directory_gives_no_bottleneck_and_no_suggestion(tmp_path: Path) -> None:
    out = build_performance_report(tmp_path / "runs", tmp_path / ".benchmarks")
    text = (out / "performance_report.md").read_text()
    assert "Nothing was measured yet" in text
    assert text.count("none: the data shows none") == 2
    assert json.loads((out / "performance_report.json").read_text())["items"] == []
    assert (out / "performance_report.html").read_text().startswith("<!doctype html>")


def test_each_suggestion_rests_on_a_figure_from_a_named_file(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    profile = runs / "20260101-000000-concurrent_users" / "profile_summary.json"
    _write(
        profile,
        {
            "source": "py-spy",
            "unit": "samples",
            "total": 1000,
            "top_self": [],
            "routes": [
                {
                    "route": "get_entity (service/routes/online.py)",
                    "samples": 600,
                    "share": 0.6,
                    "layers": {"serialization": 0.34, "http": 0.5},
                }
            ],
            "layers": [
                {"layer": "http", "self": 450, "share": 0.45},
                {"layer": "serialization", "self": 250, "share": 0.25},
                {"layer": "store", "self": 100, "share": 0.1},
            ],
        },
    )
    _write(
        runs / "20260101-000001-scalability-user_scaling" / "scaling.json",
        {
            "suite": "user_scaling",
            "scale": "full",
            "lines": ["x"],
            "fits": {
                "usl/1": {
                    "kind": "usl",
                    "service_workers": 1,
                    "sigma": 0.08,
                    "kappa": 1e-4,
                    "fits": True,
                    "r_squared": 0.97,
                    "peak_users": 96,
                    "peak_rps": 900,
                    "users": [1, 50, 100, 200],
                    "rps": [10, 400, 880, 700],
                    "knee_users": 50,
                    "slo_p95_ms": 50,
                },
                "save/rows": {
                    "kind": "growth",
                    "verdict": "super-linear",
                    "exponent": 1.4,
                    "ci_low": 1.2,
                    "ci_high": 1.6,
                    "min_size": 1e4,
                    "max_size": 1e6,
                },
            },
        },
    )
    items = derive(collect(runs, tmp_path / ".benchmarks"))
    titles = [i.title for i in items]
    assert any("JSON encoding is 34%" in t and "serve Arrow" in t for t in titles)
    assert any(t.startswith("serialization is 25% of service CPU") for t in titles)
    assert any("save/rows grows super-linearly" in t for t in titles)
    assert any(t.startswith("contention: sigma 0.080") for t in titles)
    assert any("throughput falls past 96 users" in t for t in titles)
    assert all(i.evidence and Path(i.source).is_file() for i in items)
    assert not any(t.startswith("store is") or t.startswith("framework is") for t in titles)  # below their bars


def _summary(status: str, p95: float, ratio: float, headless: bool = True) -> dict:
    return {
        "headline": {"requests": 1200, "rps": 40.0, "p95_ms": p95, "failure_ratio": ratio},
        "verdict": {"status": status},
        "findings": [{"severity": "critical", "title": f"from {status}", "message": "m", "suggestion": "s"}],
        "environment": {"options": {"headless": headless}},
    }


def test_load_runs_are_printed_rounded_and_runs_that_measured_nothing_are_skipped(tmp_path: Path) -> None:
    """Issue 15: 'p95 4.767695213558909 ms', and NO REQUESTS, INTERRUPTED and web-UI runs counted as measurements."""
    runs = tmp_path / "runs"
    _write(runs / "20260101-000001-a" / "summary.json", _summary("PASSED", 4.767695213558909, 0.0012345))
    _write(runs / "20260101-000002-b" / "summary.json", _summary("NO REQUESTS", 0.0, 0.0))
    _write(runs / "20260101-000003-c" / "summary.json", _summary("INTERRUPTED", 9.1234567, 0.0))
    _write(runs / "20260101-000004-d" / "summary.json", _summary("PASSED", 3.3333333, 0.0, headless=False))
    data = collect(runs, tmp_path / ".benchmarks")
    assert [load["run"] for load in data["loads"]] == ["20260101-000001-a"]
    assert {r["run"]: r["why"] for r in data["skipped_runs"]} == {
        "20260101-000002-b": "NO REQUESTS", "20260101-000003-c": "INTERRUPTED", "20260101-000004-d": "web UI run",
    }  # fmt: skip
    assert [i.title for i in derive(data) if i.kind == "bottleneck"] == ["from PASSED: m"]
    text = (build_performance_report(runs, tmp_path / ".benchmarks") / "performance_report.md").read_text()
    assert "p95 4.77 ms, failures 0.12%" in text and "4.7676952" not in text and "0.0012345" not in text
    assert "skipped, not a measurement: run 20260101-000003-c (INTERRUPTED)" in text


def test_only_skipped_runs_means_nothing_was_measured(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _write(runs / "20260101-000002-b" / "summary.json", _summary("NO REQUESTS", 0.0, 0.0))
    text = (build_performance_report(runs, tmp_path / ".benchmarks") / "performance_report.md").read_text()
    assert "Nothing was measured yet" in text and "(NO REQUESTS)" in text
