"""The run's verdict, the one word at the top of the report, and why.

Statuses, the first that applies wins:

    NO REQUESTS    the run recorded no request (nothing was measured, whatever thresholds.json says)
    INTERRUPTED    the run did not end as planned: metadata.json says so ("interrupted": true, a "stop_reason" such
                   as "SIGINT", or an exit code of a signal), or metadata.json is absent (the harness writes it
                   last) while thresholds.json is there; figures cover only part of the run
    FAILED         a threshold failed or could not be measured (thresholds.json)
    PASSED         every threshold passed
    NO THRESHOLDS  none was set: nothing to pass
    NOT RECORDED   no thresholds.json

A run with zero requests or an interrupted run is never PASSED. metadata.json's "interrupted", "stop_reason" and
"exit_code" are read defensively: each may be absent or of another type, and then says nothing.
"""

from __future__ import annotations

from typing import Any

from harness.report.rundata.view import RunView
from harness.verdict.thresholds import Threshold

__all__ = ["STATUSES", "run_stop", "threshold_results", "verdict"]

STATUSES = ("NO REQUESTS", "INTERRUPTED", "FAILED", "PASSED", "NO THRESHOLDS", "NOT RECORDED")
# Words in a stop reason that say the run was cut short rather than run to its end.
_ABNORMAL_WORDS = (
    "interrupt", "signal", "sigint", "sigterm", "sigkill", "ctrl", "keyboard", "kill", "abort", "crash", "error",
    "unreachable", "exception", "lost",
)  # fmt: skip
_SIGNAL_EXIT_CODES = {130: "SIGINT", 137: "SIGKILL", 143: "SIGTERM"}


def run_stop(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """How the run ended, from metadata.json: {interrupted: bool, reason: str | None, exit_code: int | None}."""
    meta = metadata or {}
    code = meta.get("exit_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    reason = next((v for k in ("stop_reason", "stopped_because") if isinstance(v := meta.get(k), str) and v), None)
    flag = meta.get("interrupted")
    if isinstance(flag, bool):
        interrupted = flag
    elif isinstance(flag, str | dict) and flag:  # a reason given in place of the flag
        interrupted, reason = True, reason or (flag if isinstance(flag, str) else str(flag.get("reason") or flag))
    else:
        interrupted = reason is not None and any(word in reason.lower() for word in _ABNORMAL_WORDS)
    if code is not None and (code < 0 or code in _SIGNAL_EXIT_CODES):
        interrupted = True
        reason = reason or f"exit code {code} ({_SIGNAL_EXIT_CODES.get(code, f'signal {-code}')})"
    if interrupted and reason is None:
        reason = "metadata.json marks the run interrupted"
    return {"interrupted": interrupted, "reason": reason, "exit_code": code}


def _parsed(result: dict[str, Any]) -> dict[str, Any]:
    """A thresholds.json result with its metric, endpoint and window_s (from its own keys, else its text)."""
    out = dict(result)
    if all(k in result for k in ("metric", "endpoint")):
        return out
    try:
        parsed = Threshold.parse(str(result.get("threshold") or ""))
    except ValueError:
        return {"metric": None, "endpoint": None, "window_s": None, **out}
    return {"metric": parsed.metric, "endpoint": parsed.endpoint, "window_s": parsed.window_s, **out}


def threshold_results(view: RunView) -> list[dict[str, Any]]:
    """thresholds.json's results, each with its metric, endpoint and window_s ([] without thresholds.json)."""
    data = view.run.thresholds or {}
    return [_parsed(r) for r in data.get("results", []) if isinstance(r, dict)]


def _thresholds(view: RunView) -> dict[str, Any]:
    data = view.run.thresholds
    if data is None:
        return {"status": "NOT RECORDED", "passed": None, "evaluated": None, "failed": [], "failed_thresholds": [],
                "results": [], "note": "thresholds.json not recorded"}  # fmt: skip
    results = threshold_results(view)
    passed = bool(data.get("passed", all(r.get("status") == "pass" for r in results)))
    evaluated = bool(data.get("evaluated", bool(results)))
    bad = [r for r in results if r.get("status") != "pass"]
    note = f"{len(results)} threshold(s) checked" if evaluated else "no thresholds were set: nothing was checked"
    return {
        "status": ("PASSED" if passed else "FAILED") if evaluated else "NO THRESHOLDS", "passed": passed,
        "evaluated": evaluated, "note": note, "results": results,
        "failed": [f"{str(r.get('status', '')).upper()} {r.get('threshold')}: {r.get('detail')}" for r in bad],
        "failed_thresholds": [str(r.get("threshold")) for r in bad],
    }  # fmt: skip


def verdict(view: RunView, total_requests: int | None) -> dict[str, Any]:
    """The verdict (module docstring): status, reason (why NO REQUESTS or INTERRUPTED, else None),
    thresholds_status (the thresholds' own verdict), failed_thresholds (their texts), failed (one line each with
    what was measured), results (thresholds.json's, with metric and endpoint), interrupted, stop_reason,
    exit_code, passed, evaluated, note. ``total_requests`` is None when no request source was recorded."""
    judged = _thresholds(view)
    stop = run_stop(view.run.metadata)
    meta = view.run.metadata
    recorded = meta.get("requests_recorded") if meta else None
    status, reason = judged["status"], None
    if total_requests == 0 or (total_requests is None and recorded == 0):
        status, reason = "NO REQUESTS", "the run recorded no request: nothing was measured"
    elif stop["interrupted"]:
        status, reason = "INTERRUPTED", f"the run was interrupted ({stop['reason']}): its figures cover part of it"
    elif meta is None and view.run.thresholds is not None:
        status = "INTERRUPTED"
        reason = "metadata.json is absent (the harness writes it last): the run did not finish"
    return {
        **judged,
        "status": status,
        "reason": reason,
        "thresholds_status": judged["status"],
        "interrupted": stop["interrupted"],
        "stop_reason": stop["reason"],
        "exit_code": stop["exit_code"],
    }
