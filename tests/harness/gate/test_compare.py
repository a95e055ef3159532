"""The regression gate on synthetic campaigns and runs: verdicts, exit codes, refusals, baselines, reports.

``make_campaign`` writes what ``python -m harness campaign`` leaves (campaign.json and the three Parquet tables) from
a seeded model: three endpoints and the service-wide metrics, each run's values drawn around known medians, any of
them scaled by ``shift``. Real campaigns are in tests/harness/gate/test_campaign.py.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.__main__ import main
from harness.gate.baselines import save_baseline
from harness.gate.campaign_data import CURVES_SCHEMA, METRICS_SCHEMA, RESOURCES_SCHEMA, load_campaign
from harness.gate.compare import ONE_RUN_WARNING, GateOptions, compare_sides, load_side
from harness.gate.metrics_table import BadInputError, write_parquet
from harness.report.comparison import write_campaign_report
from tests.run_fixtures import make_run_dir

LOOKUP = "GET /v1/online/{group}/{feature}/{entity_id}"
BATCH = "POST /v1/online/{group}/{feature} [batch]"
PING = "GET /v1/ping"
MEDIANS: dict[tuple[str, str], float] = {
    **{(e, m): v * f for e, f in ((LOOKUP, 1.0), (BATCH, 3.0), (PING, 0.8))
       for m, v in (("p50", 1.0), ("p90", 2.0), ("p95", 3.0), ("p99", 6.0))},
    (LOOKUP, "throughput_rps"): 400.0, (BATCH, "throughput_rps"): 100.0, (PING, "throughput_rps"): 100.0,
    (LOOKUP, "failure_ratio"): 0.0, (BATCH, "failure_ratio"): 0.0, (PING, "failure_ratio"): 0.0,
    ("", "service_cpu_ms_per_request"): 0.3, ("", "service_peak_rss_mb"): 220.0,
    ("", "service_rss_slope_mb_per_min"): 0.5, ("", "generator_cpu_percent"): 40.0,
}  # fmt: skip
FINGERPRINT = {
    "key": "0123456789abcdef",
    "machine": {"cpu_model": "Test CPU", "cpu_count_logical": 2},
    "software": {"python": "3.11.7", "packages": {"locust": "2.47.0"}, "git": {"commit": "abc"}},
}


def make_campaign(
    root: Path,
    name: str,
    *,
    runs: int = 10,
    shift: dict[tuple[str, str], float] | None = None,
    seed: int = 0,
    noise: float = 0.03,
    fingerprint: dict[str, Any] | None = None,
    faults: dict[str, Any] | None = None,
    users: str = "10",
) -> Path:
    """A campaign directory whose run values scatter (lognormal ``noise``) around MEDIANS, scaled by ``shift``."""
    rng = np.random.default_rng(seed)
    path = root / name
    path.mkdir(parents=True)
    rows, curves, resources = [], [], []
    for run in range(1, runs + 1):
        for (endpoint, metric), median in MEDIANS.items():
            value = median * (shift or {}).get((endpoint, metric), 1.0) * float(np.exp(rng.normal(0, noise)))
            unit = "ms" if metric.startswith("p") else "x"
            rows.append({"run": run, "run_dir": f"runs/r{run}", "endpoint": endpoint, "metric": metric,
                         "value": value, "unit": unit})  # fmt: skip
        for q in (0.5, 0.9, 0.99):
            curves.append({"run": run, "endpoint": LOOKUP, "quantile": q, "latency_ms": q * 3})
        resources += [{"run": run, "t_s": float(t), "service_cpu_percent": 30.0, "service_rss_mb": 220.0,
                       "generator_cpu_percent": 40.0, "generator_rss_mb": 90.0} for t in range(3)]  # fmt: skip
    write_parquet(path / "metrics.parquet", rows, METRICS_SCHEMA)
    write_parquet(path / "percentiles.parquet", curves, CURVES_SCHEMA)
    write_parquet(path / "resources.parquet", resources, RESOURCES_SCHEMA)
    info = {
        "name": name, "scenario": {"locustfile": "gate_locustfile.py", "users": users, "run_time": "2s"},
        "locust_args": ["-f", "tests/harness/gate/gate_locustfile.py", "-u", users], "warmup_s": 0.5,
        "fingerprint": fingerprint or FINGERPRINT, "faults": faults or {}, "runs_with_metrics": runs,
        "runs": [{"run": r, "exit_code": 0, "quiet": {"quiet": True}} for r in range(1, runs + 1)],
        "timing": {"overhead_s": 1.0, "overhead_ratio": 0.02},
    }  # fmt: skip
    (path / "campaign.json").write_text(json.dumps(info))
    return path


def _verdicts(comparison: Any) -> dict[tuple[str, str], str]:
    return {(r.endpoint, r.metric): r.verdict for r in comparison.results}


def test_a_slower_endpoint_is_a_regression_and_only_that_endpoint(tmp_path: Path) -> None:
    base = make_campaign(tmp_path, "base", seed=1)
    cand = make_campaign(tmp_path, "cand", seed=2, shift={(LOOKUP, "p50"): 1.3, (LOOKUP, "p90"): 1.2})
    comparison = compare_sides(load_side(str(base), tmp_path), load_side(str(cand), tmp_path))
    verdicts = _verdicts(comparison)
    assert verdicts[(LOOKUP, "p50")] == verdicts[(LOOKUP, "p90")] == "regression"
    assert {k for k, v in verdicts.items() if v == "regression"} == {(LOOKUP, "p50"), (LOOKUP, "p90")}
    assert verdicts[(LOOKUP, "failure_ratio")] == "no change"  # identical zeros: nothing to test
    assert comparison.exit_code == 4
    p50 = next(r for r in comparison.results if (r.endpoint, r.metric) == (LOOKUP, "p50"))
    assert p50.ratio_ci[0] > 1.15 and p50.change_percent == pytest.approx(30, abs=5)


def test_throughput_lower_is_worse_and_faster_latency_is_an_improvement(tmp_path: Path) -> None:
    base = make_campaign(tmp_path, "base", seed=3)
    cand = make_campaign(tmp_path, "cand", seed=4, shift={(BATCH, "throughput_rps"): 0.8, (PING, "p50"): 0.7})
    comparison = compare_sides(load_side(str(base), tmp_path), load_side(str(cand), tmp_path))
    verdicts = _verdicts(comparison)
    assert verdicts[(BATCH, "throughput_rps")] == "regression"
    assert verdicts[(PING, "p50")] == "improvement"
    assert comparison.exit_code == 4


def test_the_same_build_twice_passes_and_few_noisy_runs_are_inconclusive_with_runs_needed(tmp_path: Path) -> None:
    same = compare_sides(load_side(str(make_campaign(tmp_path, "a", seed=5)), tmp_path),
                         load_side(str(make_campaign(tmp_path, "b", seed=6)), tmp_path))  # fmt: skip
    assert same.exit_code == 0 and not same.regressions
    few = compare_sides(load_side(str(make_campaign(tmp_path, "c", runs=3, noise=0.2, seed=7)), tmp_path),
                        load_side(str(make_campaign(tmp_path, "d", runs=3, noise=0.2, seed=8)), tmp_path))  # fmt: skip
    p50 = next(r for r in few.results if (r.endpoint, r.metric) == (LOOKUP, "p50"))
    assert p50.verdict == "inconclusive" and p50.runs_needed is not None and p50.runs_needed > 3
    assert "runs per side would detect" in p50.reason


def test_different_machines_are_refused_unless_allowed_and_then_warned(tmp_path: Path) -> None:
    other = {**FINGERPRINT, "key": "fedcba9876543210", "machine": {"cpu_model": "Other", "cpu_count_logical": 8}}
    base = load_side(str(make_campaign(tmp_path, "base")), tmp_path)
    cand = load_side(str(make_campaign(tmp_path, "cand", fingerprint=other)), tmp_path)
    with pytest.raises(BadInputError, match="DIFFERENT MACHINES: cpu_model"):
        compare_sides(base, cand)
    comparison = compare_sides(base, cand, GateOptions(allow_different_machine=True))
    assert any("DIFFERENT MACHINES" in w for w in comparison.warnings)


def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = make_campaign(tmp_path, "base")
    other_scenario = make_campaign(tmp_path, "users50", users="50")
    corrupt = make_campaign(tmp_path, "corrupt")
    (corrupt / "metrics.parquet").write_bytes(b"PAR1 not really parquet")
    cases = {
        "missing": (str(tmp_path / "nope"), "is neither a campaign or run directory nor a baseline"),
        "scenario": (str(other_scenario), "ran different scenarios (users: '10' vs '50')"),
        "corrupt": (str(corrupt), "is not a readable Parquet file"),
        "run vs campaign": (str(make_run_dir(tmp_path / "runs", duration_s=20)), "compare a campaign or baseline"),
    }
    for name, (candidate, message) in cases.items():
        code = main(["compare", str(base), candidate, "--baselines-dir", str(tmp_path / "baselines")])
        err = capsys.readouterr().err
        assert code == 2, name
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (name, err)


def test_baseline_save_then_compare_by_name_and_files_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baselines = tmp_path / "baselines"
    assert main(["baseline", "save", str(make_campaign(tmp_path, "c1", seed=9)), "--as", "main",
                 "--baselines-dir", str(baselines)]) == 0  # fmt: skip
    assert {p.name for p in (baselines / "main").iterdir()} >= {"baseline.json", "metrics.parquet", "history.csv"}
    assert sum((baselines / "main" / f).stat().st_size for f in ("metrics.parquet", "history.csv")) < 100_000
    cand = make_campaign(tmp_path, "c2", seed=10, shift={(LOOKUP, "p95"): 1.5})
    code = main(["compare", "main", str(cand), "--baselines-dir", str(baselines)])
    out = capsys.readouterr().out
    assert code == 4 and "REGRESSION" in out
    summary = json.loads((cand / "comparison.json").read_text())
    assert summary["verdict"] == "regression" and summary["baseline"]["kind"] == "baseline"
    markdown = (cand / "comparison.md").read_text()
    assert markdown.startswith("### Performance gate: REGRESSION") and "| GET /v1/online" in markdown
    page = (cand / "comparison.html").read_text()
    assert "Plotly.newPlot" in page and len(page) < 500_000  # plotly.js (4.8 MB) shared, as the run report's
    assert 'src="../_assets/plotly-' in page and next((tmp_path / "_assets").glob("plotly-*.min.js")).is_file()
    assert main(["compare", "main", str(cand), "--baselines-dir", str(baselines), "--self-contained",
                 "--out", str(tmp_path / "alone")]) == 4  # fmt: skip
    assert "src=" not in (tmp_path / "alone" / "comparison.html").read_text()[:5000].replace("'", '"')


def test_a_faulted_campaign_is_refused_as_baseline_and_bannered_in_every_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faults = {"inject_delay_ms": 2.0, "route": "/v1/online/{group}/{feature}/{entity_id}"}
    faulted = make_campaign(tmp_path, "faulted", faults=faults, shift={(LOOKUP, "p50"): 3.0})
    with pytest.raises(BadInputError, match=r"injected fault: 2\.0 ms delay"):
        save_baseline(faulted, "x", tmp_path / "baselines")
    assert main(["compare", str(make_campaign(tmp_path, "clean")), str(faulted)]) == 4
    assert "INJECTED FAULT: 2.0 MS DELAY" in (faulted / "comparison.md").read_text()
    assert 'class="banner"' in (faulted / "comparison.html").read_text()
    write_campaign_report(load_campaign(faulted))
    assert "INJECTED FAULT" in (faulted / "campaign.md").read_text()
    assert "injected fault" in capsys.readouterr().err


def test_two_single_runs_compare_per_request_latencies_with_a_plain_warning(tmp_path: Path) -> None:
    slow = [(t, n, ms * (1.5 if n == "/v1/online/{group}/{feature}/{entity_id}" else 1.0), share)
            for t, n, ms, share in (("GET", "/v1/online/{group}/{feature}/{entity_id}", 6.0, 0.6),
                                    ("GET", "/health", 1.5, 0.4))]  # fmt: skip
    fast = [(t, n, 6.0 if "online" in n else 1.5, share) for t, n, _, share in slow]
    a = make_run_dir(tmp_path / "a", duration_s=60, endpoints=fast, seed=1)
    b = make_run_dir(tmp_path / "b", duration_s=60, endpoints=slow, seed=2)
    comparison = compare_sides(load_side(str(a), tmp_path), load_side(str(b), tmp_path))
    verdicts = _verdicts(comparison)
    assert verdicts[(LOOKUP, "p50")] == "regression" and verdicts[("GET /health", "p50")] == "no change"
    assert ONE_RUN_WARNING in comparison.warnings and comparison.exit_code == 4
    throughput = next(r for r in comparison.results if r.metric == "throughput_rps")
    assert not throughput.gated and "one run per side" in throughput.reason


def test_baseline_history_finds_the_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "baselines" / "main" / "history.csv"
    history.parent.mkdir(parents=True)
    rng = np.random.default_rng(3)
    with open(history, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["saved_at", "commit", "endpoint", "metric", "median", "runs"])
        for i in range(24):
            writer.writerow([f"2026-01-{i + 1:02d}T00:00:00", f"c{i:03d}", LOOKUP, "p50",
                             1.0 + (0.2 if i >= 14 else 0.0) + rng.normal(0, 0.01), 10])  # fmt: skip
            writer.writerow([f"2026-01-{i + 1:02d}T00:00:00", f"c{i:03d}", PING, "p50", 0.8 + rng.normal(0, 0.01), 10])
    assert main(["baseline", "history", "main", "--baselines-dir", str(tmp_path / "baselines")]) == 0
    out = capsys.readouterr().out
    assert "1 step(s) found" in out and f"{LOOKUP} p50: from save 14" in out and "commit c014" in out
    assert main(["baseline", "history", "nope", "--baselines-dir", str(tmp_path / "baselines")]) == 2


def test_three_runs_per_side_cannot_reach_significance_so_a_huge_change_is_inconclusive_exit_5_and_shown_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: --repeat 3 gave "no regression" (exit 0) for a +256% p50: 3 vs 3 runs never give p < 0.1."""
    base = make_campaign(tmp_path, "base", runs=3, seed=11)
    cand = make_campaign(tmp_path, "cand", runs=3, seed=12, shift={(LOOKUP, "p50"): 3.56})
    code = main(["compare", str(base), str(cand), "--baselines-dir", str(tmp_path / "baselines")])
    captured = capsys.readouterr()
    assert code == 5
    assert "3 runs per side cannot reach significance" in captured.err and "--repeat >= 4" in captured.err
    assert captured.out.splitlines()[-1].startswith("INCONCLUSIVE")
    summary = json.loads((cand / "comparison.json").read_text())
    assert summary["verdict"] == "inconclusive" and summary["exit_code"] == 5
    assert summary["runs_to_reach_significance"] == 4
    first = summary["metrics"][0]
    assert (first["endpoint"], first["metric"]) == (LOOKUP, "p50") and first["change_percent"] > 200
    assert (cand / "comparison.md").read_text().startswith("### Performance gate: INCONCLUSIVE")
    page = (cand / "comparison.html").read_text()
    assert 'id="inconclusive"' in page
    rows = page.split('<table class="verdicts">', 1)[1].split("</tr>")
    assert f"{LOOKUP}: p50" in rows[1] and "<td>+25" in rows[1]  # the first row under the header
    assert main(["compare", str(base), str(cand), "--allow-inconclusive"]) == 0
    assert "INCONCLUSIVE" in capsys.readouterr().out  # still flagged


def test_holm_over_many_tests_needs_more_runs_and_ties_cannot_beat_the_exact_floor(tmp_path: Path) -> None:
    base = load_side(str(make_campaign(tmp_path, "a", runs=5, seed=13)), tmp_path)
    cand = load_side(str(make_campaign(tmp_path, "b", runs=5, seed=14, shift={(LOOKUP, "p50"): 2.0})), tmp_path)
    assert compare_sides(base, cand).unreachable is None  # BH: 2 / C(10, 5) = 0.008 < 0.05
    holm = compare_sides(base, cand, GateOptions(correction="holm"))
    assert holm.unreachable is not None and "Holm" in holm.unreachable and holm.exit_code == 5
    for result in holm.results:  # no per-request approximation sneaks under what 5 vs 5 runs allow
        assert not result.p_value < 2 / 252


def test_baseline_save_refuses_a_campaign_too_small_to_compare_against_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = make_campaign(tmp_path, "small", runs=3)
    with pytest.raises(BadInputError, match=r"3 run\(s\) with metrics.*--repeat >= 4"):
        save_baseline(small, "main", tmp_path / "baselines")
    args = ["baseline", "save", str(small), "--as", "main", "--baselines-dir", str(tmp_path / "baselines")]
    assert main(args) == 2 and "refused as a baseline" in capsys.readouterr().err
    assert not (tmp_path / "baselines" / "main").exists()
    assert main([*args, "--force"]) == 0 and (tmp_path / "baselines" / "main" / "metrics.parquet").is_file()


@pytest.mark.parametrize(
    ("verdict", "saved"), [("inconclusive", False), ("regression", False), ("no regression", True)]
)
def test_the_ci_workflow_saves_a_baseline_only_after_a_conclusive_pass(
    tmp_path: Path, verdict: str, saved: bool
) -> None:
    """The workflow's update step, run by bash with a stand-in for the harness: an inconclusive comparison passed
    with --allow-inconclusive (exit 0) still keeps the old baseline."""
    import subprocess

    import yaml

    workflow = yaml.safe_load((Path(__file__).parents[3] / ".github/workflows/nightly.yml").read_text())
    step = next(s for s in workflow["jobs"]["history"]["steps"] if s.get("name", "").startswith("Update the baseline"))
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "$@" > saved.txt\n')
    fake.chmod(0o755)
    (tmp_path / "comparison").mkdir()
    write = {"verdict": verdict, "exit_code": 0}
    (tmp_path / "comparison" / "comparison.json").write_text(json.dumps(write, indent=2))
    env = {"PATH": "/usr/bin:/bin", "CAMPAIGN": "campaigns/x", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, check=True)
    assert (tmp_path / "saved.txt").exists() == saved


def test_a_campaign_of_three_runs_is_warned_before_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import harness.gate.campaign

    ran: list[int] = []
    monkeypatch.setattr(
        harness.gate.campaign, "run_campaign", lambda config, *a, **k: ran.append(config.repeat) or tmp_path
    )
    assert main(["campaign", "--repeat", "3", "--campaigns-dir", str(tmp_path), "--", "-f", "x.py"]) == 0
    err = capsys.readouterr().err
    assert ran == [3] and "3 run(s) per side cannot reach significance" in err and "--repeat >= 4" in err
    assert main(["campaign", "--repeat", "10", "--campaigns-dir", str(tmp_path), "--", "-f", "x.py"]) == 0
    assert "WARNING" not in capsys.readouterr().err
