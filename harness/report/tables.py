"""The report's tables, as HTML fragments built from summary.json (``harness.report.summary``): endpoints,
OK/KO latency, failures, exceptions, thresholds, findings, resources, environment. Every text from the run is
escaped; numbers are formatted here (``fmt_ms``, ``fmt_bytes``, ``fmt_measure``) for the page's other parts too."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

__all__ = [
    "agents_tables", "endpoints_table", "environment_table", "exceptions_table", "failures_table", "findings_blocks",
    "fmt_bytes", "fmt_measure", "fmt_ms", "fmt_num", "ok_ko_table", "resources_table", "thresholds_table",
]  # fmt: skip


def fmt_num(value: Any, digits: int = 1) -> str:
    """A number with thousands separators (``digits`` decimals for floats), '–' for None, text escaped."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return escape(str(value))


def fmt_ms(value: float | None, unit: bool = False) -> str:
    """A latency in ms with 3 significant digits below 100 ms (0.612, 5.85, 18.3), whole ms above."""
    if not isinstance(value, int | float):
        return "–"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) >= 0.001 else f"{value:.2g}"
    return f"{text} ms" if unit else text


def fmt_bytes(value: float | None) -> str:
    """A byte count in B, KB, MB or GB (powers of 1024, as the rest of the harness counts MB)."""
    if not isinstance(value, int | float):
        return "–"
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:,.0f} B"


def fmt_measure(value: Any, unit: str) -> str:
    """A threshold figure in its unit: ratios as percentages, the rest with 3 significant digits or more."""
    if not isinstance(value, int | float):
        return "–"
    if unit == "ratio":
        return f"{value:.2%}"
    return f"{value:,.1f} {escape(unit)}" if abs(value) >= 100 else f"{value:.3g} {escape(unit)}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "", numeric: Sequence[bool] = (),
           row_class: Sequence[str] = (), table_id: str = "") -> str:  # fmt: skip
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_class[r]}"' if r < len(row_class) and row_class[r] else ""
        cells = "".join(
            f'<td class="num">{cell}</td>' if i < len(numeric) and numeric[i] else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def endpoints_table(s: dict[str, Any]) -> str:
    """Per-endpoint requests, failures, RPS, min/mean/percentiles/max latency and bytes received."""
    req = s["requests"]
    if req["source"] is None:
        return '<p class="note">Requests not recorded (neither requests.arrows nor locust_stats.csv).</p>'
    rows, classes = [], []
    for e in [*req["endpoints"], *([req["total"]] if req["total"] else [])]:
        rows.append([escape(str(e["endpoint"])), fmt_num(e["requests"]), fmt_num(e["failures"]),
                     _ratio(e.get("failure_ratio")), fmt_num(e.get("rps"), 2),
                     *(fmt_ms(e.get(f"{p}_ms")) for p in ("min", "mean", "p50", "p90", "p95", "p99", "max")),
                     fmt_bytes(e.get("bytes_total")), fmt_bytes(e.get("bytes_mean"))])  # fmt: skip
        classes.append("total" if e is req["total"] else "")
    caption = (f"Latency in ms. Source: {req['source']} ({req.get('source_note')}). "
               f"Percentiles: {req['percentile_method']}. "
               f"RPS = requests / run duration ({s['duration_s']:,.1f} s). Bytes: response bodies received, "
               "as the request log recorded them (mean per response).")  # fmt: skip
    headers = ["endpoint", "requests", "failures", "failure %", "RPS", "min", "mean", "p50", "p90", "p95", "p99",
               "max", "received", "per response"]  # fmt: skip
    return _table(headers, rows, caption, [False, *[True] * 13], classes, "endpoints-table")


def ok_ko_table(s: dict[str, Any]) -> str:
    """Latency of successful (OK) and failed (KO) requests apart: a fast KO is a refusal, a slow one a timeout."""
    rows = s["requests"].get("ok_ko") or []
    if not rows:
        return '<p class="note">OK/KO split not recorded (needs requests.arrows).</p>'
    body = [
        [
            escape(r["outcome"]),
            fmt_num(r["requests"]),
            *(fmt_ms(r.get(f"{m}_ms")) for m in ("min", "mean", "p50", "p95", "p99", "max")),
        ]
        for r in rows
    ]
    caption = ("Latency in ms of the successful (OK) and the failed (KO) requests apart, nearest rank, from "
               f"requests.arrows: {s['requests'].get('ok_ko_note') or 'every request'}.")  # fmt: skip
    headers = ["outcome", "requests", "min", "mean", "p50", "p95", "p99", "max"]
    return _table(headers, body, caption, [False, *[True] * 7], ["", "", "total"], "ok-ko-table")


def failures_table(s: dict[str, Any]) -> str:
    if not s["failures"]:
        return '<p class="note">No failed requests.</p>'
    rows = [[escape(f["endpoint"]), fmt_num(f["count"]), f"<code>{escape(f['error'][:400])}</code>"]
            for f in s["failures"]]  # fmt: skip
    caption = "Failed requests grouped by endpoint and error message (the first 400 characters shown)."
    return _table(["endpoint", "count", "error"], rows, caption, [False, True, False])


def exceptions_table(s: dict[str, Any]) -> str:
    """Exceptions raised in the locustfile's own code (locust_exceptions.csv), with their tracebacks folded."""
    if "locust_exceptions.csv" in s.get("not_recorded", []):
        return '<p class="note">locust_exceptions.csv not recorded.</p>'
    if not s["exceptions"]:
        return '<p class="note" id="no-exceptions">No exceptions in the user code (locust_exceptions.csv).</p>'
    rows = [[fmt_num(e["count"]), f"<code>{escape(e['message'][:400])}</code>",
             f"<details><summary>traceback</summary><pre>{escape(e['traceback'])}</pre></details>",
             escape(e["nodes"])] for e in s["exceptions"]]  # fmt: skip
    caption = "Exceptions raised by the users' own code (locust_exceptions.csv), most frequent first."
    return _table(["count", "message", "traceback", "nodes"], rows, caption, [True, False, False, False])


def thresholds_table(s: dict[str, Any]) -> str:
    verdict = s["verdict"]
    if not verdict["results"]:
        return f'<p class="note">{escape(verdict["note"])}.</p>'
    rows = []
    for r in verdict["results"]:
        status = str(r.get("status"))
        unit = r.get("unit") or ""
        rows.append([f'<span class="status-{escape(status)}">{escape(status.upper())}</span>',
                     f"<code>{escape(str(r.get('threshold')))}</code>", fmt_measure(r.get("measured"), unit),
                     fmt_measure(r.get("limit"), unit), escape(str(r.get("detail") or ""))])  # fmt: skip
    caption = ("Evaluated at the end of the run (thresholds.json); an error (not measurable) is not a pass. "
               "Limits are drawn on their charts (dash-dot lines).")  # fmt: skip
    return _table(["status", "threshold", "measured", "limit", "detail"], rows, caption, table_id="thresholds-table")


def finding_block(f: dict[str, Any], evidence: bool = True) -> str:
    """One finding: severity, title, message, suggestion (and its evidence numbers)."""
    pre = f"<pre>evidence: {escape(json.dumps(f['evidence']))}</pre>" if evidence else ""
    return (
        f'<div class="finding {escape(f["severity"])}" data-kind="{escape(f["kind"])}">'
        f'<span class="sev">{escape(f["severity"])}</span><h3>{escape(f["title"])}</h3>'
        f"<p>{escape(f['message'])}</p><p><b>Suggestion:</b> {escape(f['suggestion'])}</p>{pre}</div>"
    )


def findings_blocks(s: dict[str, Any]) -> str:
    unevaluated = s["analysis"]["unevaluated"]
    skipped = ""
    if unevaluated:
        items = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in unevaluated.items())
        skipped = f'<p class="note">Rules not evaluated:</p><ul class="note">{items}</ul>'
    if not s["findings"]:
        return f'<p id="no-findings">No findings: no rule fired on this run\'s data.</p>{skipped}'
    return "".join(finding_block(f) for f in s["findings"]) + skipped


def resources_table(s: dict[str, Any]) -> str:
    """Per process: CPU mean and max (percent of one core), RSS at start and end, its max and slope."""
    res = s["resources"]
    rows = [[escape(r["scope"]), escape(str(r["process"])), fmt_num(r["cpu_mean_percent"]),
             fmt_num(r["cpu_max_percent"]), fmt_num(r["rss_start_mb"]), fmt_num(r["rss_end_mb"]),
             fmt_num(r["rss_max_mb"]), fmt_num(r["rss_slope_mb_per_min"], 2)]
            for r in res.get("table") or []]  # fmt: skip
    classes = ["total" if r["pid"] is None else "" for r in res.get("table") or []]
    if rows:
        caption = ("Over the run, from the sampler (samples.arrows, host.arrows). CPU in percent of one core (a "
                   "process on two cores can reach 200%); RSS in MB (2**20 bytes); slope: least-squares line, "
                   "MB per minute. The host row gives the whole machine's CPU and its memory used.")  # fmt: skip
        headers = ["scope", "process", "CPU mean %", "CPU max %", "RSS start MB", "RSS end MB", "RSS max MB",
                   "RSS slope MB/min"]  # fmt: skip
        table = _table(headers, rows, caption, [False, False, *[True] * 6], classes, "resources-table")
    else:
        table = '<p class="note">Processes not recorded (no samples.arrows).</p>'
    gpus = res.get("gpu")
    if gpus:
        gpu_rows = [[escape(f"{g['index']} {g['name']}"), fmt_num(g["util_mean_percent"]),
                     fmt_num(g["util_max_percent"]), fmt_num(g["mem_used_max_mb"], 0), fmt_num(g["mem_total_mb"], 0)]
                    for g in gpus]  # fmt: skip
        headers = ["GPU", "util mean %", "util max %", "memory used max MB", "memory total MB"]
        return table + _table(headers, gpu_rows, numeric=[False, True, True, True, True]) + agents_tables(res)
    return table + f'<p class="note">GPU: {escape(str(res.get("gpu_note")))}.</p>' + agents_tables(res)


def agents_tables(res: dict[str, Any]) -> str:
    """Per agent host: its clock, each window it was lost (as a lost worker is named), its resources table;
    "" without agents (a single-host report is unchanged)."""
    blocks = []
    for h in res.get("hosts") or []:
        name = escape(str(h["name"]))
        offset, spread = h.get("clock_offset_ms"), h.get("clock_uncertainty_ms")
        clock = ("clock offset unknown (no ping answered): its own timestamps are used" if offset is None
                 else f"clock offset {fmt_num(offset, 1)} ms ± {fmt_num(spread, 1)} ms (its clock minus this "
                      "one's, from ping round trips), its rows moved onto this clock")  # fmt: skip
        lost = "".join(
            f'<p class="warn lost-agent">Agent <b>{name}</b> was lost from {escape(str(w["from"]))} to '
            f'{escape(str(w["to"])) if w.get("to") else "the end of the run"}: nothing was heard from it in between '
            "(what it sampled meanwhile came from its backlog if it returned).</p>"
            for w in h.get("lost") or []
        )  # fmt: skip
        rows = [[escape(r["scope"]), escape(str(r["process"])), fmt_num(r["cpu_mean_percent"]),
                 fmt_num(r["cpu_max_percent"]), fmt_num(r["rss_start_mb"]), fmt_num(r["rss_end_mb"]),
                 fmt_num(r["rss_max_mb"]), fmt_num(r["rss_slope_mb_per_min"], 2)]
                for r in h.get("table") or []]  # fmt: skip
        classes = ["total" if r["pid"] is None else "" for r in h.get("table") or []]
        headers = ["scope", "process", "CPU mean %", "CPU max %", "RSS start MB", "RSS end MB", "RSS max MB",
                   "RSS slope MB/min"]  # fmt: skip
        table = (_table(headers, rows, "", [False, False, *[True] * 6], classes, f"resources-table-{name}") if rows
                 else '<p class="note">No samples from this agent during the run.</p>')  # fmt: skip
        gpus = "".join(f'<p class="note">GPU {g["index"]} {escape(str(g["name"]))}: util mean '
                       f'{fmt_num(g["util_mean_percent"])} %, memory used max '
                       f'{fmt_num(g["mem_used_max_mb"], 0)} MB.</p>' for g in h.get("gpu") or [])  # fmt: skip
        if h.get("kind", "agent") == "agent":
            seen = (f'{fmt_num(h.get("rows"), 0)} rows, seen {escape(str(h.get("first_seen")))} to '
                    f'{escape(str(h.get("last_seen")))}')  # fmt: skip
            title = f"Host {name} (agent, {escape(str(h.get('host')))})"
        else:
            seen, title = "the samples its Locust workers shipped", f"Host {name} (Locust workers)"
        blocks.append(f'<h3 class="agent-host" id="host-{name}">{title}</h3><p class="note">{clock}; {seen}.</p>'
                      f"{lost}{table}{gpus}")  # fmt: skip
    return "".join(blocks)


def environment_table(s: dict[str, Any]) -> str:
    env = s["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    git = env.get("git_commit")
    verdict = s["verdict"]
    rows = [
        ("command line", env.get("command_line")), ("locustfile", env.get("locustfile")),
        ("profile", json.dumps(env.get("profile")) if env.get("profile") else None),
        ("thresholds", "; ".join(env.get("thresholds") or []) or None), ("options", json.dumps(env.get("options"))),
        ("exit code", verdict.get("exit_code")), ("stop reason", verdict.get("stop_reason")),
        ("runner", env.get("runner")), ("Locust workers", env.get("workers")),
        ("workers lost", ", ".join(env.get("workers_lost") or []) or "none"),
        ("service workers", env.get("service_workers")), ("python", env.get("python")),
        ("packages", packages or None), ("platform", env.get("platform")), ("hostname", env.get("hostname")),
        ("CPU", f"{env.get('cpu_model')} ({env.get('cpu_count_logical')} logical, {env.get('cpu_count_physical')} "
                "physical)"),
        ("memory", f"{env.get('memory_total_gb')} GB"),
        ("git commit", f"{git}{' (dirty)' if env.get('git_dirty') else ''}" if git else None),
        ("environment variables", ", ".join(f"{k}={v}" for k, v in (env.get("env") or {}).items()) or None),
    ]  # fmt: skip
    return _table(["field", "value"], [[escape(k), fmt_num(v)] for k, v in rows])
