"""Open-model load shapes (``harness.arrivals``): they plan a total arrival rate in requests/s, not users.

``tick()`` keeps one user per Locust process (the open model's scheduler: one per worker, or one locally) and ends
the run; ``arrival_rate()`` is the total rate the harness splits across the processes. Time is read through the
injectable clock of ``ProfileShape``, so tests drive these with a fake clock.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable
from typing import Any

from profiles.model import Profile
from profiles.shapes import ProfileShape, Tick

__all__ = ["RateStagesShape", "StressRateShape"]


def _processes(shape: ProfileShape) -> int:
    """Locust processes that send load: the master's workers, else 1."""
    runner = getattr(shape, "runner", None)
    count = getattr(runner, "worker_count", None) if type(runner).__name__ == "MasterRunner" else None
    return max(1, int(count or 1))


class RateStagesShape(ProfileShape):
    """Stage i offers ``rate`` requests/s from the sum of the earlier stages' durations until its own end."""

    abstract = True
    shape = "rate"
    rate_driven = True

    def __init__(self, profile: Profile | None = None, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(profile, clock=clock)
        if not self.profile.stages:
            raise ValueError(f"profile {self.profile.name!r}: shape 'rate' needs at least one [[stages]] table")
        self._ends_s = list(itertools.accumulate(s.duration_s for s in self.profile.stages))
        self.duration_s = self._ends_s[-1]

    def arrival_rate(self) -> float:
        """The total rate planned now, requests/s (0 after the last stage)."""
        i = bisect.bisect_right(self._ends_s, self.get_run_time())
        return float(self.profile.stages[i].rate or 0.0) if i < len(self._ends_s) else 0.0

    def tick(self) -> Tick:
        if self.get_run_time() >= self.duration_s:
            return None
        users = _processes(self)
        return users, float(users)


class StressRateShape(ProfileShape):
    """Raise the rate by ``step_rate`` (from ``start_rate``) every ``step_s`` until a threshold breaks, or
    ``max_rate`` held, or ``max_duration_s``: the highest rate held within the SLO (``result()``).

    At the end of each step ``breach_check()`` (the breached threshold's text, or None) and ``rps_probe()``
    (achieved requests/s over the step) are called, as in ``profiles.shapes.StressShape``.
    """

    abstract = True
    shape = "stress_rate"
    rate_driven = True

    def __init__(
        self,
        profile: Profile | None = None,
        *,
        breach_check: Callable[[], str | None],
        rps_probe: Callable[[], float],
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(profile, clock=clock)
        p = self.params
        self._breach_check, self._rps_probe = breach_check, rps_probe
        self._first, self._step, self._max = p["start_rate"], p["step_rate"], p["max_rate"]
        self._step_s, self._max_duration_s = p["step_s"], p["max_duration_s"]
        steps = math.ceil((self._max - self._first) / self._step - 1e-9) + 1
        self.duration_s = min(steps * self._step_s, self._max_duration_s or math.inf)
        self._reset_state()

    def _reset_state(self) -> None:
        self._rate = self._first
        self._step_started_s = 0.0
        self._stopped_because: str | None = None
        self._steps: list[dict[str, Any]] = []
        self.highest_ok_rate: float | None = None
        self.highest_ok_rps: float | None = None
        self.breach: str | None = None
        self.breached_at_rate: float | None = None

    def reset_time(self) -> None:
        """Restart the clock and the search (Locust calls this when a shape test starts)."""
        super().reset_time()
        if hasattr(self, "_first"):
            self._reset_state()

    def arrival_rate(self) -> float:
        """The total rate offered now, requests/s (0 once stopped)."""
        return 0.0 if self._stopped_because is not None else float(self._rate)

    def tick(self) -> Tick:
        if self._stopped_because is not None:
            return None
        now_s = self.get_run_time()
        if now_s - self._step_started_s >= self._step_s:
            breach = self._breach_check()
            step: dict[str, Any] = {"rate": self._rate, "end_s": now_s, "breach": breach, "rps": None}
            self._steps.append(step)
            if breach is not None:
                self.breach, self.breached_at_rate = breach, self._rate
                return self._stop("breach")
            self.highest_ok_rate, self.highest_ok_rps = self._rate, float(self._rps_probe())
            step["rps"] = self.highest_ok_rps
            if self._rate >= self._max:
                return self._stop("max_rate")
            self._rate = min(self._rate + self._step, self._max)
            self._step_started_s = now_s
        if self._max_duration_s is not None and now_s >= self._max_duration_s:
            return self._stop("max_duration")
        users = _processes(self)
        return users, float(users)

    def _stop(self, because: str) -> None:
        self._stopped_because = because
        return None

    def result(self) -> dict[str, Any]:
        """What the search found: highest_ok_rate (requests/s offered, None if no step passed), highest_ok_rps
        (achieved over that step), breach, breached_at_rate, stopped_because, the steps; plus the keys the
        harness prints for a users stress (highest_ok_users: the processes, breached_at_users)."""
        return {
            "highest_ok_rate": self.highest_ok_rate,
            "highest_ok_rps": self.highest_ok_rps,
            "highest_ok_users": _processes(self),
            "breach": self.breach,
            "breached_at_rate": self.breached_at_rate,
            "breached_at_users": _processes(self) if self.breach else None,
            "stopped_because": self._stopped_because,
            "steps": [dict(s) for s in self._steps],
        }
