"""The run report's "Where the time goes" section, from the run directory's profile_summary.json (written by a
``--profile-cpu`` window, harness.profiling.cpu_profile, or by tests/performance/profiling/cpu_profiler.py).

``with_profile_section(page, run_dir)`` returns the page with the section inserted before its footer (or
``</body>``); the page is unchanged when the run has no profile_summary.json.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["PROFILE_SUMMARY", "profile_section", "with_profile_section"]

PROFILE_SUMMARY = "profile_summary.json"
_ROWS = 10


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _table(rows: list[dict[str, Any]], key: str, unit: str) -> str:
    body = "".join(
        f"<tr><td>{escape(r['function'])}</td><td>{escape(r['layer'])}</td><td>{escape(str(r['file']))}:{r['line']}"
        f"</td><td class='num'>{r[key]:,.{0 if unit == 'samples' else 4}f}</td><td class='num'>{_pct(r['share'])}</td>"
        "</tr>"
        for r in rows[:_ROWS]
    )
    return (
        f"<table><thead><tr><th>function</th><th>layer</th><th>where</th><th>{key} ({unit})</th><th>share</th>"
        f"</tr></thead><tbody>{body}</tbody></table>"
    )


def profile_section(summary: dict[str, Any], run_dir: Path) -> str:
    """The section's HTML (an ``<section id="profile">``)."""
    if summary.get("error"):
        return (
            f'<section id="profile"><h2>Where the time goes</h2><p class="note">No CPU profile: '
            f"{escape(str(summary['error']))}</p></section>"
        )
    layers = " · ".join(
        f"<b>{escape(row['layer'])}</b> {_pct(row['share'])}" for row in summary.get("layers", []) if row["share"] > 0
    )
    routes = "".join(
        f"<li>{escape(r['route'])}: {_pct(r['share'])} of the samples; within it "
        + ", ".join(f"{escape(k)} {_pct(v)}" for k, v in r["layers"].items())
        + "</li>"
        for r in summary.get("routes", [])[:5]
    )
    links = " ".join(
        f'<a href="{name}">{name}</a>'
        for name in ("profile.svg", "profile.speedscope.json")
        if (run_dir / name).is_file()
    )
    unit = summary.get("unit", "samples")
    return (
        '<section id="profile"><h2>Where the time goes</h2>'
        f"<p>{escape(summary.get('method', ''))}. {summary.get('total', 0):,.{0 if unit == 'samples' else 3}f} "
        f"{escape(unit)} in all. {links}</p><p>By layer (innermost frame of a known layer): {layers}</p>"
        + (f"<p>By route:</p><ul>{routes}</ul>" if routes else "")
        + f"<h3>Top functions by self time</h3>{_table(summary.get('top_self', []), 'self', unit)}"
        f"<h3>Top functions by cumulative time</h3>{_table(summary.get('top_cumulative', []), 'cumulative', unit)}"
        "</section>"
    )


def with_profile_section(page: str, run_dir: Path) -> str:
    """``page`` with the profile section before its footer and a link to it at the end of its ``<nav>``, when
    ``run_dir`` holds profile_summary.json."""
    path = Path(run_dir) / PROFILE_SUMMARY
    if not path.is_file():
        return page
    try:
        section = profile_section(json.loads(path.read_text(encoding="utf-8")), Path(run_dir))
    except (ValueError, KeyError, TypeError) as error:
        section = (
            f'<section id="profile"><h2>Where the time goes</h2><p>unreadable {PROFILE_SUMMARY}: '
            f"{escape(str(error))}</p></section>"
        )
    if "</nav>" in page:  # the report's navigation lists the section too
        page = page.replace("</nav>", '<a href="#profile">Where the time goes</a></nav>', 1)
    for anchor in ('<footer class="note">', "</body>"):
        if anchor in page:
            return page.replace(anchor, section + anchor, 1)
    return page + section
