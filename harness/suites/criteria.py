"""Seed 002's success criteria, measured and judged in one command: ``python -m harness criteria [--quick]``.

The seed's list has fifteen criteria (five groups of three); its scripts judge two more that the list does not
repeat: the memory of its 3-minute stability run (script 2.2: growth < 50 MB) and its cache statistics (script
4.1: size, max size and TTL reported as configured). These 17 are ``CRITERIA``. Each has the seed's threshold and
our own, stricter target; a criterion *passes* when it meets the seed's threshold, and the report says apart
whether it also meets ours. ``--quick`` shortens the timed parts (the stability loop runs 10 s instead of the
seed's 180 s, the service CPU 5 s instead of 30 s) and says so.

Writes ``runs/<stamp>-criteria/``: criteria.json, criteria.md, criteria.html (and metadata.json like any run).
Exit codes: 0 every criterion passed, 3 at least one failed (as a failed threshold), 2 bad usage.
"""

from __future__ import annotations

import argparse
import operator
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

from harness.recording.rundir import RunDirectory, collect_environment

__all__ = ["CRITERIA", "CRITERIA_EXIT_CODE", "Criterion", "add_criteria_command", "judge", "run_criteria"]

CRITERIA_EXIT_CODE = 3
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Criterion:
    id: str
    group: str
    title: str
    seed_text: str  # the seed's wording (Korean)
    unit: str
    op: str
    seed: float
    target: float
    measurement: str  # which harness.suites._criteria_checks group measures it


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        "feature_generation",
        "processing",
        "feature generation, 1,000 movies",
        "피처 생성 속도",
        "movies/s",
        ">=",
        10,
        100_000,
        "throughput",
    ),
    Criterion("save_speed", "processing", "save speed, 10,000 x 30", "저장 속도", "MB/s", ">=", 10, 50, "throughput"),
    Criterion(
        "load_speed",
        "processing",
        "load speed, 10,000 x 30, checksum verified",
        "조회 속도",
        "MB/s",
        ">=",
        20,
        200,
        "throughput",
    ),
    Criterion(
        "concurrency",
        "scalability",
        "8 threads on one store: success rate",
        "동시성",
        "%",
        ">=",
        90,
        100,
        "concurrency",
    ),
    Criterion(
        "memory_1000_movies",
        "scalability",
        "memory to process 1,000 movies (peak RSS increase)",
        "대용량 처리 메모리",
        "MB",
        "<",
        300,
        10,
        "memory",
    ),
    Criterion(
        "stability_errors",
        "scalability",
        "continuous operation: error rate",
        "연속 안정성",
        "%",
        "<",
        5,
        0.001,
        "stability",
    ),
    Criterion(
        "memory_growth",
        "memory",
        "repeated processing: RSS growth over 10 batches",
        "메모리 증가",
        "MB",
        "<",
        20,
        2,
        "memory",
    ),
    Criterion(
        "memory_release",
        "memory",
        "memory released by gc (Python + Arrow allocations)",
        "메모리 정리",
        "%",
        ">",
        0,
        99,
        "memory",
    ),
    Criterion(
        "cpu_normal",
        "memory",
        "service CPU at a normal load (100 lookups/s)",
        "리소스 사용",
        "% of a core",
        "<",
        50,
        10,
        "service_cpu",
    ),
    Criterion(
        "cache_speedup",
        "cache",
        "second read vs first (5 features of 1,000 rows)",
        "캐시 효과",
        "x",
        ">=",
        2,
        20,
        "cache",
    ),
    Criterion("cache_hit_rate", "cache", "hit rate over 500 repeated reads", "캐시 적중률", "%", ">", 80, 99, "cache"),
    Criterion(
        "ttl_refresh", "cache", "read after expiry reloads the newer version", "TTL 관리", "yes=1", "==", 1, 1, "cache"
    ),
    Criterion(
        "error_recovery",
        "stability",
        "reads succeed once a torn file is repaired",
        "오류 복구",
        "%",
        ">=",
        100,
        100,
        "recovery",
    ),
    Criterion(
        "data_integrity",
        "stability",
        "reads that lost data under concurrent access",
        "데이터 무결성",
        "reads",
        "==",
        0,
        0,
        "concurrency",
    ),
    Criterion(
        "degradation",
        "stability",
        "slow-down, last tenth of the cycles vs first",
        "장시간 안정성",
        "%",
        "<",
        10,
        5,
        "stability",
    ),
    Criterion(
        "stability_memory",
        "stability",
        "memory growth over the continuous run (seed script 2.2)",
        "메모리 안정성",
        "MB",
        "<",
        50,
        10,
        "stability",
    ),
    Criterion(
        "cache_stats_reported",
        "cache",
        "cache statistics as configured (seed script 4.1)",
        "캐시 통계",
        "yes=1",
        "==",
        1,
        1,
        "cache",
    ),
)


# The seed's Korean wording in English, shown beside it: a page must not depend on a CJK font being installed
# (without one the Korean renders as empty boxes).
SEED_TEXT_ENGLISH = {
    "피처 생성 속도": "feature generation speed",
    "저장 속도": "save speed",
    "조회 속도": "lookup speed",
    "동시성": "concurrency",
    "대용량 처리 메모리": "memory for large-volume processing",
    "연속 안정성": "continuous-operation stability",
    "메모리 증가": "memory growth",
    "메모리 정리": "memory cleanup",
    "리소스 사용": "resource use",
    "캐시 효과": "cache effect",
    "캐시 적중률": "cache hit rate",
    "TTL 관리": "TTL management",
    "오류 복구": "error recovery",
    "데이터 무결성": "data integrity",
    "장시간 안정성": "long-run stability",
    "메모리 안정성": "memory stability",
    "캐시 통계": "cache statistics",
}
_CJK_FONTS = "'Noto Sans CJK KR','Noto Sans KR','Malgun Gothic','Apple SD Gothic Neo',sans-serif"


def judge(criterion: Criterion, value: float | None) -> dict[str, Any]:
    """The criterion's row: measured value, passed (seed threshold), target_met (ours), and the seed's wording in
    English (``seed_text_en``)."""
    compare = _OPS[criterion.op]
    passed = value is not None and compare(value, criterion.seed)
    return {
        **asdict(criterion),
        "seed_text_en": SEED_TEXT_ENGLISH.get(criterion.seed_text, ""),
        "value": value,
        "passed": passed,
        "target_met": value is not None and compare(value, criterion.target),
    }


def run_criteria(
    quick: bool,
    measurements: Mapping[str, Callable[[bool], dict[str, float]]] | None = None,
) -> dict[str, Any]:
    """Measure every criterion (``measurements``: ``_criteria_checks.MEASUREMENTS`` by default) and judge it."""
    if measurements is None:
        from harness.suites._criteria_checks import MEASUREMENTS as measurements
    values: dict[str, float] = {}
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in dict.fromkeys(c.measurement for c in CRITERIA):
        start = time.perf_counter()
        try:
            values.update(measurements[name](quick))
        except Exception as error:  # a measurement that breaks fails its criteria, it does not hide the others
            errors[name] = f"{type(error).__name__}: {error}"
        timings[name] = round(time.perf_counter() - start, 3)
    rows = [
        judge(c, values.get(c.id)) | ({"error": errors[c.measurement]} if c.measurement in errors else {})
        for c in CRITERIA
    ]
    return {
        "quick": quick,
        "passed": all(r["passed"] for r in rows),
        "criteria": rows,
        "passed_count": sum(r["passed"] for r in rows),
        "target_met_count": sum(r["target_met"] for r in rows),
        "measurement_s": timings,
        "note": "quick: stability loop 10 s (seed: 180 s), service CPU 5 s" if quick else "full durations",
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "not measured"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def render_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"## Seed 002 criteria: {'PASSED' if result['passed'] else 'FAILED'} "
        f"({result['passed_count']}/{len(result['criteria'])} meet the seed, {result['target_met_count']} our "
        f"target; {result['note']})",
        "",
        "| # | criterion | measured | seed | ours | |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(result["criteria"], 1):
        mark = "PASS" if r["passed"] else "**FAIL**"
        mark += " (target met)" if r["target_met"] else (" (target not met)" if r["passed"] else "")
        lines.append(
            f"| {i} | {r['title']} ({r['seed_text']}) | {_fmt(r['value'])} {r['unit']} | {r['op']} "
            f"{_fmt(r['seed'])} | {r['op']} {_fmt(r['target'])} | {mark} |"
        )
    return "\n".join(lines) + "\n"


def render_html(result: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr class='{'ok' if r['passed'] else 'bad'}'><td>{i}</td><td>{escape(r['group'])}</td>"
        f"<td>{escape(r['title'])}"
        f"<br><small>seed: {escape(r.get('seed_text_en') or '')} (<span lang='ko'>{escape(r['seed_text'])}</span>)"
        f"</small></td><td class='num'>{_fmt(r['value'])} {escape(r['unit'])}</td>"
        f"<td>{escape(r['op'])} {_fmt(r['seed'])}</td><td>{escape(r['op'])} {_fmt(r['target'])}</td>"
        f"<td>{'PASS' if r['passed'] else 'FAIL'}</td><td>{'met' if r['target_met'] else 'not met'}</td>"
        f"<td>{escape(r.get('error', ''))}</td></tr>"
        for i, r in enumerate(result["criteria"], 1)
    )
    status = "PASSED" if result["passed"] else "FAILED"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Seed 002 criteria</title><style>"
        "body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;border-bottom:1px solid #ddd}"
        f".num{{text-align:right}}[lang=ko]{{font-family:{_CJK_FONTS}}}"
        ".bad{background:#fdd}.ok td:nth-child(7){color:#070}</style></head><body>"
        f"<h1>Seed 002 success criteria: {status}</h1><p>{result['passed_count']}/{len(result['criteria'])} meet the "
        f"seed's threshold, {result['target_met_count']} our target. {escape(result['note'])}.</p>"
        "<table><thead><tr><th>#</th><th>group</th><th>criterion</th><th>measured</th><th>seed</th><th>our target</th>"
        f"<th>verdict</th><th>target</th><th>error</th></tr></thead><tbody>{rows}</tbody></table></body></html>\n"
    )


def criteria_command(args: argparse.Namespace) -> int:
    """``python -m harness criteria``: measure, judge, write the three files, print the table; 3 on a failure."""
    result = run_criteria(args.quick)
    run_dir = RunDirectory(Path(args.runs_dir), "criteria")
    run_dir.write_json(
        "metadata.json",
        {"scenario": "criteria", "quick": args.quick, "environment": collect_environment(os.environ, Path.cwd())},
    )
    run_dir.write_json("criteria.json", result)
    markdown = render_markdown(result)
    run_dir.file("criteria.md").write_text(markdown, encoding="utf-8")
    run_dir.file("criteria.html").write_text(render_html(result), encoding="utf-8")
    print(markdown + f"\nwrote {run_dir.path}/criteria.html, criteria.json, criteria.md")
    return 0 if result["passed"] else CRITERIA_EXIT_CODE


def add_criteria_command(commands: Any) -> None:
    """Register ``criteria`` on ``python -m harness``'s subparsers."""
    parser = commands.add_parser(
        "criteria",
        help="measure and judge seed 002's 17 success criteria",
        description="Measure each of seed 002's success criteria, judge it against the seed's threshold and our "
        "target, write criteria.html/.json/.md into a run directory; exit 3 when one fails.",
    )
    parser.add_argument("--quick", action="store_true", help="short timed parts (about 30 s in all): for make test")
    parser.add_argument(
        "--runs-dir", default="runs", metavar="DIR", help="where the run directory goes (default: runs)"
    )
    parser.set_defaults(handler=criteria_command)


if __name__ == "__main__":
    ns = argparse.Namespace(quick="--quick" in sys.argv, runs_dir="runs")
    sys.exit(criteria_command(ns))
