"""What a stress search found, in one sentence: the console, report.html's headline, summary.md and summary.json.

The stress profiles (``profiles/stress.toml`` by users, ``profiles/stress_rate.toml`` by offered rate) step the load
up until a threshold breaks (``profiles.shapes.StepSearch``); the run records ``StepSearch.result()`` in
metadata.json's ``shape_result``. ``stress_summary`` turns it into the answer the profile exists for::

    highest rate held within the SLO: 800 req/s (next step 900 req/s broke p99 < 100ms)
    highest load held within the SLO: 40 users, 512.3 req/s (next step 50 users broke p95 < 100ms)

and says so when no step held, when every step up to the maximum held (the limit lies beyond it), or when the
run ended before the search did (``-t``, a stop: the limit is at least the last step held).
"""

from __future__ import annotations

from typing import Any

__all__ = ["stress_line", "stress_summary"]


def _kind(result: dict[str, Any]) -> str | None:
    if "highest_ok_rate" in result:
        return "rate"
    if "highest_ok_users" in result and "highest_ok_rps" in result:
        return "users"
    return None


def _level(kind: str, value: Any) -> str:
    if kind == "rate":
        return f"{float(value):,.6g} req/s"
    return f"{int(value)} users" if float(value).is_integer() else f"{float(value):g} users"


def stress_summary(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """summary.json's ``stress``: {kind "rate"|"users", highest_ok (the level: req/s offered or users; None when no
    step held), highest_ok_rps (achieved over that step), next_step (the level that broke; None when none did),
    breach (the threshold that broke it), stopped_because, steps, headline (the sentence)}; None for a run whose
    shape is no stress search."""
    if not isinstance(result, dict) or (kind := _kind(result)) is None:
        return None
    steps = list(result.get("steps") or [])
    ok = result.get(f"highest_ok_{kind}")
    rps = result.get("highest_ok_rps")
    breach = result.get("breach")
    next_step = result.get(f"breached_at_{kind}")
    stopped = result.get("stopped_because")
    if ok is None or (kind == "users" and not ok and rps is None):
        ok = None
    if ok is not None:
        held = _level(kind, ok)
        if kind == "users" and rps is not None:
            held += f", {rps:,.1f} req/s"
        elif kind == "rate" and rps is not None and abs(rps - float(ok)) > 0.05 * float(ok):
            held += f" offered ({rps:,.1f} req/s achieved)"
        text = f"highest {'rate' if kind == 'rate' else 'load'} held within the SLO: {held}"
    else:
        text = "no step held within the SLO"
    if breach:
        broke = f"next step {_level(kind, next_step)}" if next_step is not None else "the next step"
        if ok is None:
            broke = f"the first step, {_level(kind, next_step)}," if next_step is not None else "the first step"
        text += f" ({broke} broke {breach})" if ok is not None else f": {broke} broke {breach}"
    elif stopped == f"max_{kind}":
        text += " (every step up to the profile's maximum held: the limit is beyond it)"
    elif stopped == "max_duration":
        text += " (the search reached its max_duration_s before any step broke a threshold: the limit is beyond it)"
    elif ok is not None:
        text += " (the run ended before a step broke a threshold: the limit is at least this)"
    else:
        text += ": the run ended before the first step was judged"
    return {
        "kind": kind,
        "highest_ok": ok,
        "highest_ok_rps": rps,
        "next_step": next_step,
        "breach": breach,
        "stopped_because": stopped,
        "steps": steps,
        "headline": text,
    }


def stress_line(result: dict[str, Any] | None) -> str | None:
    """The console's line for a stress run ("Stress: highest rate held within the SLO: ..."); None otherwise."""
    found = stress_summary(result)
    return None if found is None else f"Stress: {found['headline']}"
