"""harness.suites.criteria: seed 002's 17 criteria judged against the seed's threshold and our target, in one
command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.suites.criteria import CRITERIA, judge, run_criteria

ROOT = Path(__file__).resolve().parents[3]
TIMING_SENSITIVE = {"degradation", "cpu_normal", "cache_speedup"}


def test_seventeen_criteria_each_with_a_stricter_or_equal_target() -> None:
    assert len(CRITERIA) == 17 and len({c.id for c in CRITERIA}) == 17
    for c in CRITERIA:
        assert (c.target >= c.seed) if c.op in (">=", ">") else (c.target <= c.seed), c.id


def test_judging_separates_the_seed_threshold_from_our_target() -> None:
    save = next(c for c in CRITERIA if c.id == "save_speed")
    assert (judge(save, 30.0)["passed"], judge(save, 30.0)["target_met"]) == (True, False)
    assert (judge(save, 5.0)["passed"], judge(save, None)["passed"]) == (False, False)


def test_a_broken_measurement_fails_its_criteria_and_not_the_others() -> None:
    def broken(quick: bool) -> dict[str, float]:
        raise OSError("disk gone")

    ids = {c.id: c for c in CRITERIA}
    values = {
        c.id: (c.seed + 1 if c.op in (">=", ">") else c.seed - 1 if c.op in ("<", "<=") else c.seed) for c in CRITERIA
    }
    measurements = {
        c.measurement: (lambda q, m=c.measurement: {k: v for k, v in values.items() if ids[k].measurement == m})
        for c in CRITERIA
    }
    measurements["cache"] = broken
    result = run_criteria(True, measurements)
    failed = {r["id"] for r in result["criteria"] if not r["passed"]}
    assert failed == {c.id for c in CRITERIA if c.measurement == "cache"}
    assert not result["passed"] and "disk gone" in next(r for r in result["criteria"] if r["id"] in failed)["error"]


@pytest.mark.slow
def test_python_m_harness_criteria_quick_measures_and_writes_three_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness", "criteria", "--quick", "--runs-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    (run_dir,) = list(tmp_path.glob("*-criteria"))
    data = json.loads((run_dir / "criteria.json").read_text())
    assert len(data["criteria"]) == 17 and all(r["value"] is not None for r in data["criteria"]), data
    assert result.returncode == (0 if data["passed"] else 3), result.stderr[-2000:]
    # A slow-down or a CPU figure can break on a machine busy with other tests; every other criterion must pass.
    failed = [r for r in data["criteria"] if not r["passed"] and r["id"] not in TIMING_SENSITIVE]
    assert not failed, failed
    assert {"criteria.html", "criteria.md", "metadata.json"} <= {p.name for p in run_dir.iterdir()}
    assert "| 17 |" in result.stdout


def test_criteria_html_labels_every_korean_seed_text_in_english_beside_it() -> None:
    """Issue 15: without a CJK font the Korean labels render as empty boxes; the English says the same."""
    from harness.suites.criteria import render_html

    rows = [judge(c, None) for c in CRITERIA]
    assert all(r["seed_text_en"] and r["seed_text_en"].isascii() for r in rows), [r["id"] for r in rows]
    result = {"criteria": rows, "passed": False, "passed_count": 0, "target_met_count": 0, "note": "quick"}
    page = render_html(result)
    assert "seed: feature generation speed (<span lang='ko'>피처 생성 속도</span>)" in page
    assert "[lang=ko]{font-family:'Noto Sans CJK KR'" in page
