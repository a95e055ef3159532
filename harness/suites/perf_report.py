"""The performance report (seed 000): measurements, bottlenecks identified, optimization suggestions.

``build_performance_report(runs_dir, benchmarks_dir)`` reads what earlier commands left, newest first, and writes
``<runs_dir>/<stamp>-performance-report/performance_report.{html,md,json}``:

    benchmarks      .benchmarks/**/*.json (pytest-benchmark --benchmark-autosave / --benchmark-json)
    scalability     runs/*-scalability-*/scaling.json (tests/performance/scalability; newest per suite)
    CPU profile     runs/*/profile_summary.json (--profile-cpu, tests/performance/profiling/cpu_profiler.py)
    memory profile  runs/*-profiling-memory/memory_profile.json (tests/performance/profiling/memory_profiler.py)
    load runs       runs/*/summary.json (every Locust run's report; newest ``LOAD_RUNS``) and their findings; a run
                    that measured nothing (NO REQUESTS, NOT RECORDED), was INTERRUPTED or ran from the web UI (its
                    load set by hand) is listed as skipped, never counted as a measurement
    criteria        runs/*-criteria/criteria.json (python -m harness criteria)

Every bottleneck and every suggestion is derived from those files by a rule below and carries its evidence
(the figure, and the file it came from). A rule whose data is absent or whose condition does not hold adds
nothing: there is no canned advice, and a report over an empty runs directory says that nothing was measured.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from harness.recording.rundir import RunDirectory

__all__ = ["Evidence", "build_performance_report", "collect", "derive"]

LOAD_RUNS = 10
_NOT_MEASUREMENTS = ("NO REQUESTS", "INTERRUPTED", "NOT RECORDED")  # summary.json verdict statuses
_SUGGEST = {  # layer -> what to do when it dominates the service's CPU
    "serialization": "serve Arrow IPC (Accept: application/vnd.apache.arrow.stream) or cache encoded rows",
    "http": "per-request overhead dominates: batch lookups (POST /v1/online/{group}/{feature}) or add uvicorn workers",
    "framework": "skip response-model validation on hot routes (return a Response directly)",
    "store": "the store's own work dominates: look at the top store functions (fsync, pointer reads) below",
    "pipeline": "the pipeline dominates: extract features once per catalog load and serve them from the store",
}
_LAYER_SHARE = {"serialization": 0.2, "http": 0.4, "framework": 0.2, "store": 0.3, "pipeline": 0.3}


@dataclass(frozen=True)
class Evidence:
    """One bottleneck or suggestion: what, the figure that shows it, and where the figure came from."""

    kind: str  # "bottleneck" or "suggestion"
    title: str
    evidence: str
    source: str


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _newest(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: p.parent.name, reverse=True)


def collect(runs_dir: Path, benchmarks_dir: Path) -> dict[str, Any]:
    """Everything the report draws on, each item with its ``source`` path."""
    runs_dir = Path(runs_dir)
    scalability: dict[str, Any] = {}
    for path in _newest(runs_dir.glob("*-scalability-*/scaling.json")):
        data = _read(path)
        if data and data.get("suite") not in scalability:
            scalability[data["suite"]] = {**data, "source": str(path)}
    profile = next(
        (
            {**d, "source": str(p)}
            for p in _newest(runs_dir.glob("*/profile_summary.json"))
            if (d := _read(p)) and not d.get("error") and d.get("total")
        ),
        None,
    )
    memory = next(
        (
            {**d, "source": str(p)}
            for p in _newest(runs_dir.glob("*-profiling-memory/memory_profile.json"))
            if (d := _read(p))
        ),
        None,
    )
    criteria = next(
        ({**d, "source": str(p)} for p in _newest(runs_dir.glob("*-criteria/criteria.json")) if (d := _read(p))), None
    )
    loads, skipped = [], []
    for path in _newest(runs_dir.glob("*/summary.json")):
        data = _read(path)
        if len(loads) >= LOAD_RUNS:
            break
        if data and data.get("headline"):
            if why := _not_a_measurement(data):
                skipped.append({"run": path.parent.name, "source": str(path), "why": why})
                continue
            cache = _read(path.parent / "cache_stats.json")
            loads.append(
                {
                    "run": path.parent.name,
                    "source": str(path),
                    "headline": data["headline"],
                    "verdict": (data.get("verdict") or {}).get("status"),
                    "findings": data.get("findings", []),
                    "cache_hit_rate": (cache or {}).get("hit_rate"),
                }
            )
    benchmarks = []
    for path in sorted(Path(benchmarks_dir).glob("**/*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:1]:
        for bench in (_read(path) or {}).get("benchmarks", []):
            stats = bench.get("stats", {})
            benchmarks.append(
                {
                    "name": bench.get("fullname") or bench.get("name"),
                    "median_s": stats.get("median"),
                    "ops": stats.get("ops"),
                    "rounds": stats.get("rounds"),
                    "source": str(path),
                }
            )
    return {
        "scalability": scalability,
        "profile": profile,
        "memory": memory,
        "criteria": criteria,
        "loads": loads,
        "skipped_runs": skipped,
        "benchmarks": benchmarks,
    }


def _not_a_measurement(summary: dict[str, Any]) -> str | None:
    """Why a run's summary.json is no measurement (its verdict, or a web-UI run), or None when it is one."""
    status = (summary.get("verdict") or {}).get("status")
    if status in _NOT_MEASUREMENTS:
        return status
    if ((summary.get("environment") or {}).get("options") or {}).get("headless") is False:
        return "web UI run"
    return None


def _num(value: Any, spec: str = ".3g", unit: str = "") -> str:
    """A figure for a reader: ``spec`` digits (3 significant by default) and its unit, "-" when not measured."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-" if value is None else str(value)
    return f"{value:{spec}}{unit}"


def _profile_rules(profile: dict[str, Any], out: list[Evidence]) -> None:
    src = profile["source"]
    for row in profile.get("layers", []):
        layer, share = row["layer"], row["share"]
        if layer in _LAYER_SHARE and share >= _LAYER_SHARE[layer]:
            out.append(
                Evidence(
                    "bottleneck",
                    f"{layer} is {share:.0%} of the service's CPU samples",
                    f"{row['self']:,} of {profile['total']:,} {profile['unit']}",
                    src,
                )
            )
            out.append(
                Evidence(
                    "suggestion",
                    f"{layer} is {share:.0%} of service CPU: {_SUGGEST[layer]}",
                    f"profile layers: {layer} {share:.1%}",
                    src,
                )
            )
    for route in profile.get("routes", [])[:3]:
        ser = route["layers"].get("serialization", 0.0)
        if route["share"] >= 0.1 and ser >= 0.2:
            out.append(
                Evidence(
                    "suggestion",
                    f"JSON encoding is {ser:.0%} of the CPU under {route['route']}: serve Arrow or cache encoded rows",
                    f"{route['share']:.0%} of all samples are in that route",
                    src,
                )
            )
    top = (profile.get("top_self") or [None])[0]
    if top and top["share"] >= 0.15 and top["layer"] != "other":
        out.append(
            Evidence(
                "bottleneck",
                f"one function takes {top['share']:.0%} of the self time: {top['function']}",
                f"{top['file']}:{top['line']} ({top['layer']})",
                src,
            )
        )


def _scaling_rules(scalability: dict[str, Any], out: list[Evidence]) -> None:
    for suite, data in scalability.items():
        src = data["source"]
        for key, fit in data.get("fits", {}).items():
            if fit.get("kind") == "growth" and fit.get("verdict") == "super-linear":
                out.append(
                    Evidence(
                        "bottleneck",
                        f"{key} grows super-linearly: n^{fit['exponent']:.2f}",
                        f"95% CI [{fit['ci_low']:.2f}, {fit['ci_high']:.2f}] over {fit['min_size']:g}.."
                        f"{fit['max_size']:g}",
                        src,
                    )
                )
                out.append(
                    Evidence(
                        "suggestion",
                        f"{key}: look for per-row Python work or repeated copies (cost grows "
                        f"as n^{fit['exponent']:.2f})",
                        f"suite {suite}",
                        src,
                    )
                )
            if fit.get("kind") == "usl" and fit.get("fits"):
                users = f"{fit['service_workers']} worker(s)"
                if fit["sigma"] >= 0.05:
                    out.append(
                        Evidence(
                            "bottleneck",
                            f"contention: sigma {fit['sigma']:.3f} with {users}",
                            f"throughput cannot exceed {1 / fit['sigma']:.0f}x one user's",
                            src,
                        )
                    )
                    out.append(
                        Evidence(
                            "suggestion",
                            "a serialized section limits throughput (USL sigma "
                            f"{fit['sigma']:.3f}): find the lock or single-threaded step; more users "
                            "will not help",
                            f"USL fit R^2 {fit['r_squared']:.2f}",
                            src,
                        )
                    )
                if fit.get("peak_users") and fit["peak_users"] <= max(fit.get("users") or [0]):
                    out.append(
                        Evidence(
                            "bottleneck",
                            f"throughput falls past {fit['peak_users']:.0f} users ({users})",
                            f"USL kappa {fit['kappa']:.2e}, peak {fit['peak_rps']:.0f} req/s",
                            src,
                        )
                    )
                    out.append(
                        Evidence(
                            "suggestion",
                            f"cap concurrency near {fit['peak_users']:.0f} users per "
                            f"service ({users}) or add capacity: beyond it requests only queue",
                            f"USL peak at {fit['peak_users']:.0f} users",
                            src,
                        )
                    )
                if (
                    fit.get("knee_users") is not None
                    and fit.get("peak_users")
                    and fit["knee_users"] < fit["peak_users"]
                ):
                    out.append(
                        Evidence(
                            "bottleneck",
                            f"latency, not throughput, sets the limit: p95 leaves the "
                            f"{fit['slo_p95_ms']:g} ms SLO past {fit['knee_users']:g} users ({users})",
                            f"USL peak {fit['peak_users']:.0f} users",
                            src,
                        )
                    )
        usl = {f["service_workers"]: f for f in data.get("fits", {}).values() if f.get("kind") == "usl"}
        if 1 in usl and 2 in usl and usl[1].get("rps") and usl[2].get("rps"):
            gain = max(usl[2]["rps"]) / max(max(usl[1]["rps"]), 1e-9) - 1
            if gain < 0.2:
                out.append(
                    Evidence(
                        "suggestion",
                        f"a second uvicorn worker added only {gain:+.0%} throughput: the "
                        "host or the load generator is the limit, not the service's one core",
                        f"max {max(usl[1]['rps']):.0f} vs {max(usl[2]['rps']):.0f} req/s",
                        src,
                    )
                )
        if suite == "model_scaling":
            fit = data.get("fits", {}).get("lookup/batch")
            if fit and fit.get("exponent", 1) < 0.7:
                out.append(
                    Evidence(
                        "suggestion",
                        "clients should batch lookups: a batch's cost grows as "
                        f"n^{fit['exponent']:.2f}, so the cost per id falls with the batch size",
                        f"batch lookups 1..{fit['max_size']:g} ids",
                        src,
                    )
                )


def _run_rules(data: dict[str, Any], out: list[Evidence]) -> None:
    for load in data["loads"]:
        for finding in load["findings"]:
            if finding.get("severity") in ("critical", "high", "warning"):
                out.append(
                    Evidence(
                        "bottleneck",
                        f"{finding.get('title')}: {finding.get('message')}",
                        f"run {load['run']}",
                        load["source"],
                    )
                )
                if finding.get("suggestion"):
                    out.append(
                        Evidence(
                            "suggestion",
                            finding["suggestion"],
                            f"finding {finding.get('title')} in {load['run']}",
                            load["source"],
                        )
                    )
        rate = load.get("cache_hit_rate")
        if rate is not None and rate < 0.8:
            out.append(
                Evidence(
                    "suggestion",
                    f"cache hit rate {rate:.0%}: raise cache_max_entries / cache_max_bytes",
                    f"run {load['run']} cache_stats.json",
                    load["source"],
                )
            )
    criteria = data["criteria"]
    for row in (criteria or {}).get("criteria", []):
        if not row["passed"]:
            out.append(
                Evidence(
                    "bottleneck",
                    f"seed criterion failed: {row['title']}",
                    f"measured {_num(row['value'], '.4g')} {row['unit']}, seed {row['op']} {row['seed']}",
                    criteria["source"],
                )
            )
        elif not row["target_met"]:
            out.append(
                Evidence(
                    "suggestion",
                    f"{row['title']}: meets the seed but not our target",
                    f"measured {_num(row['value'], '.4g')} {row['unit']}, target {row['op']} {row['target']}",
                    criteria["source"],
                )
            )
    memory = data["memory"]
    for site in (memory or {}).get("growth_sites", [])[:3]:
        if site["growth_bytes"] >= 1 << 20:
            out.append(
                Evidence(
                    "bottleneck",
                    f"memory grows at {site['site']}",
                    f"+{site['growth_bytes'] / 2**20:.1f} MB over {memory['rounds']} rounds",
                    memory["source"],
                )
            )


def derive(data: dict[str, Any]) -> list[Evidence]:
    """The bottlenecks and suggestions the data supports (empty when it supports none)."""
    out: list[Evidence] = []
    if data["profile"]:
        _profile_rules(data["profile"], out)
    _scaling_rules(data["scalability"], out)
    _run_rules(data, out)
    return list(dict.fromkeys(out))


def _measurements_md(data: dict[str, Any]) -> list[str]:
    lines = []
    for suite, s in sorted(data["scalability"].items()):
        lines += [f"**scalability {suite}** ({s['scale']}, {s['source']})", ""] + [f"- {line}" for line in s["lines"]]
        lines.append("")
    if data["profile"]:
        p = data["profile"]
        lines.append(
            f"**CPU profile** ({p['source']}): "
            + ", ".join(f"{r['layer']} {r['share']:.0%}" for r in p["layers"] if r["share"] > 0)
        )
    for load in data["loads"]:
        h = load["headline"]
        lines.append(
            f"- load run {load['run']}: {load['verdict']}, {h.get('requests') or 0:,} requests, "
            f"{h.get('rps') or 0:,.1f} req/s, p95 {_num(h.get('p95_ms'), unit=' ms')}, "
            f"failures {_num(h.get('failure_ratio'), '.2%')}"
        )

    if data["criteria"]:
        c = data["criteria"]
        lines.append(
            f"\n**seed 002 criteria** ({c['source']}): {c['passed_count']}/{len(c['criteria'])} pass, "
            f"{c['target_met_count']} meet our targets"
        )
    for b in data["benchmarks"][:20]:
        lines.append(f"- benchmark {b['name']}: median {b['median_s'] * 1e3:.3f} ms ({b['source']})")
    if data["memory"]:
        m = data["memory"]
        lines.append(f"- memory profile ({m['source']}): traced peak {m['traced_peak_bytes'] / 2**20:.1f} MB")
    skipped = [f"- skipped, not a measurement: run {r['run']} ({r['why']})" for r in data.get("skipped_runs", [])]
    nothing = ["Nothing was measured yet: run the suites (see README, Performance), then this report."]
    return (lines or nothing) + skipped


def render_markdown(data: dict[str, Any], items: list[Evidence]) -> str:
    lines = ["# Performance report", "", "## Measurements", "", *_measurements_md(data), ""]
    for kind, title in (("bottleneck", "Bottlenecks identified"), ("suggestion", "Optimization suggestions")):
        chosen = [i for i in items if i.kind == kind]
        lines += [f"## {title}", ""]
        lines += [f"- **{i.title}**: {i.evidence} ({i.source})" for i in chosen] or ["- none: the data shows none"]
        lines.append("")
    return "\n".join(lines)


def render_html(markdown: str) -> str:
    """A plain page of the markdown (headings, bullets, bold) without a dependency."""
    body = []
    for line in markdown.splitlines():
        text = escape(line)
        while "**" in text:
            text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
        if line.startswith("# "):
            body.append(f"<h1>{text[2:]}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{text[3:]}</h2>")
        elif line.startswith("- "):
            body.append(f"<li>{text[2:]}</li>")
        elif line.strip():
            body.append(f"<p>{text}</p>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Performance report</title><style>body{font-family:"
        "sans-serif;margin:2em;max-width:70em}li{margin:.2em 0}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )


def build_performance_report(runs_dir: Path, benchmarks_dir: Path) -> Path:
    """Write the report (three files) into a new run directory under ``runs_dir``; returns that directory."""
    data = collect(runs_dir, benchmarks_dir)
    items = derive(data)
    markdown = render_markdown(data, items)
    run = RunDirectory(Path(runs_dir), "performance-report")
    run.write_json(
        "performance_report.json",
        {"generated_at": datetime.now(UTC).isoformat(), "inputs": data, "items": [asdict(i) for i in items]},
    )
    run.file("performance_report.md").write_text(markdown, encoding="utf-8")
    run.file("performance_report.html").write_text(render_html(markdown), encoding="utf-8")
    return run.path
