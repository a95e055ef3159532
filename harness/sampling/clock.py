"""An agent's clock seen from the master: NTP-style offset from ping/pong round trips.

One exchange: the master sends a ping at ``t0`` (its clock), the agent receives it at ``t1`` and answers at ``t2``
(the agent's clock), the master receives the pong at ``t3``. Then::

    offset = ((t1 - t0) + (t2 - t3)) / 2      agent clock minus master clock
    rtt    = (t3 - t0) - (t2 - t1)            time on the wire, both ways

Each exchange's offset is wrong by at most rtt / 2 (the path's asymmetry), so the estimate is the median offset of
the exchanges with the lowest round trips (the quickest ``LOW_RTT_SHARE`` of those kept, at least one), and its
uncertainty half the lowest round trip seen. A row the agent stamped ``ts_s`` happened at ``ts_s - offset`` on
the master's clock.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

__all__ = ["ClockEstimate", "ClockEstimator"]

KEEP = 64  # exchanges kept per agent (the newest): bounded, and a drifting clock is followed
LOW_RTT_SHARE = 0.25


@dataclass(frozen=True)
class ClockEstimate:
    """Agent clock minus master clock, and how far off it may be, in seconds; from ``samples`` exchanges."""

    offset_s: float
    uncertainty_s: float
    samples: int


class ClockEstimator:
    """Collects exchanges (t0, t1, t2, t3 in epoch seconds) and estimates one agent's offset."""

    def __init__(self, keep: int = KEEP) -> None:
        self._exchanges: deque[tuple[float, float]] = deque(maxlen=keep)  # (rtt, offset)

    def add(self, t0: float, t1: float, t2: float, t3: float) -> None:
        """One exchange; ignored when its times are not finite or its round trip is negative (a clock stepped)."""
        if not all(math.isfinite(t) for t in (t0, t1, t2, t3)):
            return
        rtt = (t3 - t0) - (t2 - t1)
        if rtt < 0:
            return
        self._exchanges.append((rtt, ((t1 - t0) + (t2 - t3)) / 2.0))

    def estimate(self) -> ClockEstimate | None:
        """The estimate, or None before the first exchange."""
        if not self._exchanges:
            return None
        ranked = sorted(self._exchanges)
        quickest = ranked[: max(1, math.ceil(len(ranked) * LOW_RTT_SHARE))]
        offset = statistics.median(offset for _, offset in quickest)
        return ClockEstimate(offset_s=offset, uncertainty_s=ranked[0][0] / 2.0, samples=len(ranked))
