"""Open-model load shapes (``harness.timing.arrivals``): they plan a total arrival rate in requests/s, not users.

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
from profiles.shape_base import ProfileShape, StepSearch, Tick

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
        self.search = StepSearch(
            "rate", first=p["start_rate"], step=p["step_rate"], maximum=p["max_rate"], step_s=p["step_s"],
            max_duration_s=p["max_duration_s"], breach_check=breach_check, rps_probe=rps_probe, nothing_held=None,
        )  # fmt: skip
        self.duration_s = min(self.search.steps_to_maximum() * p["step_s"], p["max_duration_s"] or math.inf)

    def reset_time(self) -> None:
        """Restart the clock and the search (Locust calls this when a shape test starts)."""
        super().reset_time()
        if hasattr(self, "search"):
            self.search.reset()

    def arrival_rate(self) -> float:
        """The total rate offered now, requests/s (0 once stopped)."""
        return 0.0 if self.search.stopped_because is not None else float(self.search.level)

    def tick(self) -> Tick:
        if not self.search.advance(self.get_run_time()):
            return None
        users = _processes(self)
        return users, float(users)

    def result(self) -> dict[str, Any]:
        """What the search found: ``StepSearch.result`` with unit "rate" (highest_ok_rate: requests/s offered, None
        if no step passed), plus the keys the harness prints for a users stress (highest_ok_users: the processes,
        breached_at_users)."""
        return {
            **self.search.result(),
            "highest_ok_users": _processes(self),
            "breached_at_users": _processes(self) if self.search.breach else None,
        }
