"""An agent's clock seen from the master: NTP-style offset from ping/pong round trips.

One exchange: the master sends a ping at ``t0`` (its clock), the agent receives it at ``t1`` and answers at ``t2``
(the agent's clock), the master receives the pong at ``t3``. Then::

    offset = ((t1 - t0) + (t2 - t3)) / 2      agent clock minus master clock
    rtt    = (t3 - t0) - (t2 - t1)            time on the wire, both ways

Each exchange's offset is wrong by at most rtt / 2 (the path's asymmetry, a queue on one side), so the estimate
is the median offset of the quick exchanges only: those whose round trip is at most twice the quickest plus
``RTT_SLACK_S`` (on a busy machine most pongs may wait tens of ms on one side and a few not at all: a plain median
of the quickest quarter followed the delayed ones), and its uncertainty half the slowest round trip among them.
A row the agent stamped ``ts_s`` happened at ``ts_s - offset`` on the master's clock.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

__all__ = ["ClockEstimate", "ClockEstimator"]

KEEP = 64  # exchanges kept per agent (the newest): bounded, and a drifting clock is followed
RTT_SLACK_S = 0.001  # jitter allowed above twice the quickest round trip


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
        limit = 2.0 * ranked[0][0] + RTT_SLACK_S
        quick = [(rtt, offset) for rtt, offset in ranked if rtt <= limit]
        offset = statistics.median(offset for _, offset in quick)
        return ClockEstimate(offset_s=offset, uncertainty_s=quick[-1][0] / 2.0, samples=len(ranked))
