"""A stress search's answer where a user looks: the console line, report.html's headline, summary.md, summary.json.

Issue 15: a stress_rate run printed "held 1 users ... stopped by None" and its report had no stress result at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.report import build_report
from harness.report.stress import stress_line, stress_summary
from tests.run_fixtures import make_run_dir

RATE_BREACH = {
    "highest_ok_rate": 800.0, "highest_ok_rps": 797.2, "breach": "p99 < 100ms: measured 143 ms",
    "breached_at_rate": 900.0, "stopped_because": "breach", "highest_ok_users": 1, "breached_at_users": 1,
    "steps": [{"rate": 800.0, "end_s": 120.0, "breach": None, "rps": 797.2},
              {"rate": 900.0, "end_s": 135.0, "breach": "p99 < 100ms: measured 143 ms", "rps": None}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (RATE_BREACH, "highest rate held within the SLO: 800 req/s (next step 900 req/s broke p99 < 100ms: measured"),
        ({**RATE_BREACH, "highest_ok_rate": None, "highest_ok_rps": None, "breached_at_rate": 100.0},
         "no step held within the SLO: the first step, 100 req/s, broke p99 < 100ms"),
        ({**RATE_BREACH, "highest_ok_rate": 3000.0, "highest_ok_rps": 2990.0, "breach": None, "breached_at_rate": None,
          "stopped_because": "max_rate"}, "highest rate held within the SLO: 3,000 req/s (every step up to the"),
        # the run ended (-t) before the search did: this was "stopped by None"
        ({**RATE_BREACH, "highest_ok_rate": 300.0, "highest_ok_rps": 150.0, "breach": None, "breached_at_rate": None,
          "stopped_because": None}, "300 req/s offered (150.0 req/s achieved) (the run ended before a step broke"),
        ({"highest_ok_users": 40, "highest_ok_rps": 512.34, "breach": "p95 < 100ms", "breached_at_users": 50,
          "stopped_because": "breach", "steps": []},
         "highest load held within the SLO: 40 users, 512.3 req/s (next step 50 users broke p95 < 100ms)"),
        ({"highest_ok_users": 0, "highest_ok_rps": None, "breach": "p50 < 0.001ms", "breached_at_users": 2,
          "stopped_because": "breach", "steps": []},
         "no step held within the SLO: the first step, 2 users, broke p50 < 0.001ms"),
    ],
)  # fmt: skip
def test_the_stress_sentence_names_the_highest_load_held_and_what_broke_next(
    result: dict[str, Any], expected: str
) -> None:
    found = stress_summary(result)
    assert found is not None and expected in found["headline"], found
    assert found["headline"].startswith(("highest rate held", "highest load held", "no step held"))
    line = stress_line(result)
    assert line is not None and line.startswith("Stress: ") and "None" not in line


def test_a_run_without_a_stress_search_says_nothing() -> None:
    assert stress_summary(None) is None and stress_line({"something": 1}) is None


def test_the_report_summary_and_markdown_lead_with_the_stress_result(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "runs", duration_s=60)
    metadata = json.loads((run_dir / "metadata.json").read_text())
    metadata["profile"] = {"name": "stress_rate", "shape": "stress_rate", "source": "profiles/stress_rate.toml"}
    metadata["shape_result"] = RATE_BREACH
    (run_dir / "metadata.json").write_text(json.dumps(metadata))
    result = build_report(run_dir)
    stress = result.summary["stress"]
    assert stress["kind"] == "rate" and stress["highest_ok"] == 800.0 and stress["next_step"] == 900.0
    saved = json.loads(result.summary_json_path.read_text())
    assert saved["stress"]["headline"].startswith("highest rate held within the SLO: 800 req/s (next step 900")
    page = result.html_path.read_text()
    assert 'id="stress-result"' in page and page.index('id="stress-result"') < page.index('id="headline"')
    markdown = result.summary_md_path.read_text()
    assert "**Stress: highest rate held within the SLO: 800 req/s" in markdown
    assert markdown.index("Stress:") < markdown.index("requests,")
