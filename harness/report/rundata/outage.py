"""The service unreachable: requests that got no answer at all, when, on which endpoints, and why.

A connection failure is a failed request whose recorded error names a connection-level cause
(``CONNECTION_ERRORS``: refused, reset, aborted, closed, timed out, name not resolved), as the users record it
(``ConnectionRefusedError: [Errno 111] Connection refused``), never an HTTP status. An outage is a run of
consecutive connection failures (requests in completion order, none answered in between): isolated resets among
answered requests are not one. The longest run is reported, from its first to its last failure; the embedded
service's end (metadata.json ``embedded_service.exit``), when recorded, says what happened to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc

from harness.report.rundata.requests import RequestIndex
from harness.report.rundata.view import RunView

__all__ = ["CONNECTION_ERRORS", "Outage", "connection_failures", "find_outage"]

CONNECTION_ERRORS = (
    "ConnectionRefusedError", "ConnectionResetError", "ConnectionAbortedError", "ConnectionError",
    "BrokenPipeError", "RemoteDisconnected", "HTTPConnectionClosed", "gaierror", "TimeoutError", "timeout",
)  # fmt: skip
_PATTERN = "^(?:" + "|".join(CONNECTION_ERRORS) + r")(?::|$)"


def connection_failures(requests: RequestIndex) -> np.ndarray:
    """A boolean mask of the requests that failed with a connection-level error (all False without errors)."""
    if requests.errors is None or requests.size == 0:
        return np.zeros(requests.size, dtype=bool)
    matched = pc.fill_null(pc.match_substring_regex(requests.errors, _PATTERN), False)
    return np.asarray(matched.to_numpy(zero_copy_only=False), dtype=bool) & requests.failed


@dataclass(frozen=True)
class Outage:
    """When the service gave no answer (seconds since the run start) and what the requests saw."""

    from_s: float
    to_s: float
    failures: int
    endpoints_failed: list[str]
    endpoints_requested: list[str]  # endpoints requested between from_s and to_s
    errors: dict[str, int]  # error message -> count, most frequent first
    answered_after: int  # requests answered after to_s (the service came back)
    outages: int  # runs of at least min_failures consecutive connection failures (this is the longest)
    service_exit: dict[str, Any] | None
    rows: np.ndarray = field(repr=False, compare=False)  # the failed requests' rows in the request index

    def evidence(self, duration_s: float) -> dict[str, Any]:
        return {
            "from_s": round(self.from_s, 2), "to_s": round(self.to_s, 2), "span_s": round(self.to_s - self.from_s, 2),
            "run_duration_s": round(duration_s, 2), "connection_failures": self.failures,
            "endpoints_failed": len(self.endpoints_failed), "endpoints_requested": len(self.endpoints_requested),
            "errors": self.errors, "answered_after": self.answered_after, "outages": self.outages,
            "service_exit": self.service_exit,
        }  # fmt: skip


def find_outage(view: RunView, min_failures: int) -> Outage | None:
    """The outage in ``view``'s request log, or None with fewer than ``min_failures`` connection failures."""
    requests = view.requests
    if requests is None:
        return None
    down = connection_failures(requests)
    if int(down.sum()) < min_failures:
        return None
    order = np.argsort(requests.ts_rel_s, kind="stable")
    edges = np.diff(np.r_[0, down[order].astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    if lengths.max() < min_failures:
        return None
    longest = int(np.argmax(lengths))
    rows = order[starts[longest] : ends[longest]]
    ts = requests.ts_rel_s
    from_s, to_s = float(ts[rows].min()), float(ts[rows].max())
    during = (ts >= from_s) & (ts <= to_s)
    messages = requests.errors.take(rows).to_pylist() if requests.errors is not None else []
    distinct, counts = np.unique(np.asarray(messages, dtype=object), return_counts=True)
    errors = {str(distinct[i]): int(counts[i]) for i in np.argsort(-counts, kind="stable")[:10]}
    embedded = (view.run.metadata or {}).get("embedded_service") or {}
    exit_info = embedded.get("exit") if isinstance(embedded, dict) else None
    if isinstance(exit_info, dict) and isinstance(exit_info.get("at_s"), int | float):
        exit_info = {**exit_info, "at_rel_s": round(float(exit_info["at_s"]) - view.t0_s, 2)}
    return Outage(
        from_s=from_s, to_s=to_s, failures=int(rows.size),
        endpoints_failed=sorted({requests.endpoints[e] for e in np.unique(requests.endpoint[rows])}),
        endpoints_requested=sorted({requests.endpoints[e] for e in np.unique(requests.endpoint[during])}),
        errors=errors, answered_after=int(((ts > to_s) & ~requests.failed).sum()),
        outages=int((lengths >= min_failures).sum()), service_exit=exit_info, rows=rows,
    )  # fmt: skip
