"""The harness in Locust's web UI, through Locust's own extension points (``web_ui.app``, ``template_args``):

- a **Harness** tab (``extended_tabs`` / ``extended_tables``; its rows ride on ``/stats/requests`` as
  ``extended_stats``, which the UI polls every 2 s): the run directory, the service's processes (CPU % of one
  core, RSS MB, threads, per process, from the sampler's newest tick), the load generators, the host, the GPU,
  each agent's host (``--agents-bind``: its clock offset, whether it is lost, its processes and host at its newest
  tick), each threshold's status so far, the findings so far, then the last finished run's verdict and report;
- ``GET /harness/status``: the same as JSON; ``GET /harness``: the same as a page with links, listing every run
  of the session; ``GET /harness/runs/<run>/<file>``: a file of a run of this session (its report.html, whose
  shared plotly.js is served from ``/harness/runs/_assets/``);
- the **profile field**: the known profiles (profiles/*.toml) are its choices (``all_profiles``), the "Advanced
  options" panel holding it opens by itself, and the profile named is applied when a run starts (an unknown
  name is refused with the list of known ones); with a profile, the users and spawn rate fields are not used;
- each **Start** against a service of the user's (-H, or the form's host) is first checked as a headless run is
  at start-up (``harness.locust_side.preflight.check_run_host``: reachable, http(s), reads allowed, the catalog there):
  a failed check refuses the Start with its one line, which the UI shows, and no run begins; an empty Host field
  is refused the same way (Locust would keep it as the host of every later run).
"""

from __future__ import annotations

import html
import json
import logging
import time
from pathlib import Path
from typing import Any

from flask import Response, abort, jsonify, request, send_from_directory
from locust.runners import STATE_RUNNING, STATE_SPAWNING

from harness.locust_side.live import LiveView, agents_now, gpu_now, processes_now, prometheus_now
from harness.locust_side.preflight import PreflightError, check_run_host
from harness.locust_side.session import Session
from harness.recording.redact import redact_url
from profiles.model import list_profiles

__all__ = ["TAB_KEY", "install", "status", "tab_rows"]

logger = logging.getLogger("featureload")

TAB_KEY = "harness"
TAB_STRUCTURE = [
    {"key": "section", "title": "Section"},
    {"key": "item", "title": "What"},
    {"key": "value", "title": "Value"},
]
# Opens the "Advanced options" panel of the start form, where Locust puts its Profile field.
_OPEN_PROFILE_FIELD = """<script>
(() => {
  const open = () => {
    for (const el of document.querySelectorAll('[aria-expanded="false"]')) {
      if (el.textContent.trim() === "Advanced options") { el.click(); return true; }
    }
    return false;
  };
  const watch = new MutationObserver(() => { if (open()) watch.disconnect(); });
  watch.observe(document.documentElement, {childList: true, subtree: true});
})();
</script>"""


def install(web_ui: Any, session: Session) -> None:
    """Add the tab, the routes and the profile field's behaviour to Locust's web UI."""
    app = web_ui.app
    web_ui.template_args.update(
        all_profiles=list_profiles(),
        extended_tabs=[{"title": "Harness", "key": TAB_KEY}],
        extended_tables=[{"key": TAB_KEY, "structure": TAB_STRUCTURE}],
        extended_csv_files=[{"href": "./harness", "title": "Harness: the runs of this session and their reports"}],
    )
    live: dict[int, LiveView] = {}

    def view_of(run: Any) -> LiveView:
        key = id(run)
        if key not in live:
            live.clear()
            live[key] = LiveView(run.run_dir.path, run.thresholds, run.test_started_s or run.created_at.timestamp())
        return live[key]

    @app.before_request
    def _check_a_start() -> Any:
        if request.method != "POST" or not request.path.rstrip("/").endswith("/swarm"):
            return None
        try:
            _refuse_a_blank_host(session, request.form.get("host"))
            if session.runner.state not in (STATE_SPAWNING, STATE_RUNNING):  # a Start, not an edit of a run
                _check_host(session, request.form.get("host", "").strip() or session.environment.host)
            session.use_profile(request.form.get("profile", "").strip() or None)
        except PreflightError as error:
            logger.error("Start refused: %s", error)
            return jsonify({"success": False, "message": str(error), "host": session.environment.host})
        except ValueError as error:
            return jsonify({"success": False, "message": str(error), "host": session.environment.host})
        return None

    @app.after_request
    def _extend(response: Response) -> Response:
        path = request.path.rstrip("/")
        if path.endswith("/stats/requests") and response.is_json:
            # Locust memoizes this response, its runner state included, for 2 s (locust.util.cache). The page
            # takes the state of its first fetch over the one it was rendered with, and polls only while
            # spawning or running: a page loaded in the 2 s after a Start would read a cached "ready" and show
            # the start form for the whole run. The state and user count are the runner's at this request.
            runner = session.runner
            rows = tab_rows(status(session, view_of))
            data = {**response.json, "state": runner.state, "user_count": runner.user_count,
                    "extended_stats": [{"key": TAB_KEY, "data": rows}]}  # fmt: skip
            return app.response_class(json.dumps(data), status=response.status_code, mimetype="application/json")
        if request.method == "GET" and path in ("", "/") and response.mimetype == "text/html":
            response.direct_passthrough = False
            response.set_data(response.get_data(as_text=True).replace("</body>", _OPEN_PROFILE_FIELD + "</body>"))
        return response

    @app.route("/harness/status")
    @web_ui.auth_required_if_enabled
    def harness_status() -> Response:
        """The harness's view of the run going on (or the last one) as JSON."""
        return jsonify(status(session, view_of))

    @app.route("/harness")
    @web_ui.auth_required_if_enabled
    def harness_page() -> Response:
        """The runs of this session with links to their reports, and the live view."""
        return Response(_page(status(session, view_of)), mimetype="text/html")

    @app.route("/harness/runs/<name>/<path:filename>")
    @web_ui.auth_required_if_enabled
    def harness_run_file(name: str, filename: str) -> Response:
        """A file of a run of this session (its report.html, summary.json, ...), or plotly.js from _assets."""
        runs_dir = Path(session.environment.parsed_options.runs_dir).resolve()
        if name == "_assets":
            return send_from_directory(runs_dir / "_assets", filename)
        run = session.known_run(name)
        if run is None:
            abort(404)
        return send_from_directory(run.run_dir.path.resolve(), filename)


def _refuse_a_blank_host(session: Session, host: str | None) -> None:
    """Locust would take an empty Host field as the host of this and every later run (no user could send a
    request: StopTest, a run with no request, exit code 0). Raises PreflightError for a blank one."""
    if host is None or host.strip():
        return
    current = session.environment.host
    raise PreflightError("the Host field is empty: give the service's URL, e.g. "
                         f"{redact_url(current) if current else 'http://127.0.0.1:8000'}")  # fmt: skip


def _check_host(session: Session, host: str | None) -> None:
    """Preflight's host check on the service a web UI Start would load (none for the embedded service, which the
    harness started and checked). Raises PreflightError."""
    embedded = session.embedded.base_url if session.embedded is not None else None
    if not host or (embedded is not None and host.rstrip("/") == embedded.rstrip("/")):
        return
    # The catalog must be there now: --load-catalog loaded it when the web UI started, not at each Start.
    check_run_host(session.environment, host, load_catalog=False)


def _run_entry(run: Any) -> dict[str, Any]:
    name = run.run_dir.path.name
    summary = run.report_summary or {}
    report = run.run_dir.file("report.html")
    return {
        "name": name,
        "directory": str(run.run_dir.path.resolve()),
        "state": "finished" if run.finished else ("stopping" if run.test_stopped_s else "running"),
        "verdict": (summary.get("verdict") or {}).get("status"),
        "stop_reason": run.stop_reason,
        "exit_code": run.exit_code,
        "report_url": f"./harness/runs/{name}/report.html" if run.report_summary and report.exists() else None,
    }


def status(session: Session, view_of: Any) -> dict[str, Any]:
    """The live view as JSON: ``run`` (the run going on, None between runs), its ``processes``, ``gpu``,
    ``thresholds`` and ``findings``; ``runs``: every run of the session, newest first."""
    current = session.current if session.current is not None and not session.current.finished else None
    out: dict[str, Any] = {"run": None, "processes": [], "gpu": None, "thresholds": [], "findings": [], "agents": []}
    if current is not None:
        out["run"] = _run_entry(current)
        out["processes"] = processes_now(current.run_dir.path)
        out["agents"] = agents_now(current.run_dir.path)  # other hosts (--agents-bind)
        out["gpu"] = gpu_now(current.run_dir.path)
        out["prometheus"] = _prometheus_status(current)
        out["thresholds"], out["findings"] = view_of(current).status()
        if not current.thresholds:
            out["thresholds"] = []
    out["runs"] = [_run_entry(run) for run in reversed(session.runs)]
    out["profile"] = session.profile.name if session.profile else None
    return out


def _prometheus_status(run: Any) -> dict[str, Any] | None:
    """--prometheus: the source (credentials masked), the last pull's error (one line) and each query's newest
    values; None without --prometheus."""
    recorder = run.prometheus
    if recorder is None:
        return None
    last = recorder.last
    return {"url": recorder.source.shown_url, "error": last.error if last is not None else None,
            "pulled": last is not None, "queries": prometheus_now(run.run_dir.path)}  # fmt: skip


def _prometheus_rows(data: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(item, value) rows of the tab's prometheus section."""
    if data is None:
        return []
    if data["error"]:
        return [("source", f"{data['url']}: {data['error']}")]
    if not data["queries"]:
        return [("source", f"{data['url']}: {'no series yet' if data['pulled'] else 'first pull within 5 s'}")]
    rows = [("source", data["url"])]
    for query in data["queries"]:
        values = ", ".join(f"{_short_labels(labels)}{_fmt(value, ',.4g')}" for labels, value in query["values"].items())
        more = f" (+{query['series'] - len(query['values'])} series)" if query["series"] > len(query["values"]) else ""
        rows.append((query["name"], f"{values or '-'}{more}"))
    return rows


def _short_labels(labels: str) -> str:
    """'{"route": "/x"}' as 'route=/x: ' ('' for an aggregate)."""
    try:
        parsed = json.loads(labels)
    except ValueError:
        return f"{labels}: "
    inner = ",".join(f"{k}={v}" for k, v in sorted(parsed.items()) if k != "__name__")
    return f"{inner}: " if inner else ""


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _short(cmdline: str, chars: int = 60) -> str:
    """A command line without its interpreter's path, cut to ``chars``."""
    words = cmdline.split()
    if words and "python" in Path(words[0]).name:
        words = words[1:]
    text = " ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words)) if words else ""
    return text if len(text) <= chars else text[: chars - 1] + "…"


def tab_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    """The Harness tab's rows (section, item, value) from ``status()``."""
    rows: list[dict[str, str]] = []

    def add(section: str, item: str, value: str) -> None:
        rows.append({"section": section, "item": item, "value": value})

    run = data["run"]
    if run is None:
        add("run", "state", "no run going on: press Start (the last run's report is below)")
    else:
        add("run", "state", f"{run['state']} (profile: {data.get('profile') or 'none'})")
        add("run", "directory", run["directory"])
        add("run", "report", "written when this run stops")
    for p in data["processes"]:
        if p["scope"] == "host":
            add("host", "CPU, memory used", f"CPU {_fmt(p['cpu_percent'], '.1f', '%')} of all cores, "
                f"{_fmt(p['rss_mb'], ',.0f', ' MB')} used")  # fmt: skip
            continue
        label = f"pid {p['pid']} {_short(p['cmdline']) or p['name']}"
        cpu = "CPU (from the next tick)" if p["cpu_percent"] is None else f"CPU {p['cpu_percent']:.1f}% of one core"
        add(p["scope"], label, f"{cpu}, RSS "
            f"{_fmt(p['rss_mb'], ',.1f', ' MB')}, {_fmt(p['threads'], 'd')} threads")  # fmt: skip
    if run is not None and not data["processes"]:
        add("service", "processes", "waiting for the sampler's first tick")
    for agent in data.get("agents") or []:  # every other host, as its agent streams it
        section = f"host {agent['name']}"
        state = "LOST since " + time.strftime("%H:%M:%S", time.gmtime(agent["lost_since"])) + " UTC" \
            if agent["lost_since"] else "streaming"  # fmt: skip
        add(section, "agent", f"{state}; clock offset {_fmt(agent['clock_offset_ms'], '.1f', ' ms')} "
            f"± {_fmt(agent['clock_uncertainty_ms'], '.1f', ' ms')}; {agent['rows'] or 0:,} rows")  # fmt: skip
        for p in agent["processes"]:
            if p["scope"] == "host":
                add(section, "host CPU, memory used", f"CPU {_fmt(p['cpu_percent'], '.1f', '%')} of all cores, "
                    f"{_fmt(p['rss_mb'], ',.0f', ' MB')} used")  # fmt: skip
                continue
            cpu = "-" if p["cpu_percent"] is None else f"{p['cpu_percent']:.1f}% of one core"
            add(section, f"{p['scope']}: pid {p['pid']} {_short(p['cmdline']) or p['name']}",
                f"CPU {cpu}, RSS {_fmt(p['rss_mb'], ',.1f', ' MB')}")  # fmt: skip
    gpu = data["gpu"]
    if isinstance(gpu, str):
        add("GPU", "-", gpu)
    elif gpu:
        for g in gpu:
            add("GPU", f"{g['index']} {g['name']}", f"util {_fmt(g['util_percent'], '.0f', '%')}, memory "
                f"{g['mem_used_mb']:,.0f} / {g['mem_total_mb']:,.0f} MB")  # fmt: skip
    for item, value in _prometheus_rows(data.get("prometheus")):
        add("prometheus", item, value)
    for t in data["thresholds"]:
        add("threshold", t["threshold"], f"{t['status'].upper()} so far: {t.get('detail') or ''}".strip())
    if run is not None and not data["findings"]:
        add("finding", "-", "none so far")
    for f in data["findings"]:
        add("finding", f"{f['severity']}: {f['title']}", f["message"])
    for entry in data["runs"]:
        if entry["state"] != "finished":
            continue
        verdict = entry["verdict"] or "report being built"
        where = entry["report_url"] or entry["directory"]
        add("last run", entry["name"], f"{verdict} ({entry['stop_reason']}, exit code {entry['exit_code']}): {where}")
        break
    return rows


def _page(data: dict[str, Any]) -> str:
    """``/harness``: the tab's rows and every run of the session, with links; refreshes every 2 s."""
    esc = html.escape
    body = "".join(
        f"<tr><td>{esc(r['section'])}</td><td>{esc(r['item'])}</td><td>{esc(r['value'])}</td></tr>"
        for r in tab_rows(data)
    )
    runs = "".join(
        f"<li><code>{esc(e['directory'])}</code>: {esc(e['state'])}"
        + (f", {esc(e['verdict'])}" if e["verdict"] else "")
        + (f", stopped by {esc(e['stop_reason'])}" if e["stop_reason"] else "")
        + (f' &mdash; <a href="{esc(e["report_url"])}">report</a>' if e["report_url"] else "")
        + "</li>"
        for e in data["runs"]
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='2'>"
        "<title>featureload harness</title><style>body{font-family:sans-serif;margin:1.5em}"
        "td{padding:2px 10px;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h2>Harness</h2><table>{body}</table><h3>Runs of this session</h3>"
        f"<ul>{runs or '<li>none yet</li>'}</ul><p><a href='./'>back to Locust</a></p></body></html>"
    )
