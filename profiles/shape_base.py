"""The base of the profile-driven Locust load shapes, below both ``profiles.shapes`` (the closed model: users) and
``profiles.rate_shapes`` (the open model: requests/s): ``ProfileShape`` (holds the profile, its resolved params and
the injectable clock), ``StepSearch`` (the stepped search of both stress shapes) and ``Tick`` (what ``tick()``
returns: ``(users, spawn_rate users/s)`` or None to stop).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

from locust import LoadTestShape

from profiles.model import Profile, load_profile, resolve_params

__all__ = ["ProfileShape", "StepSearch", "Tick"]

Tick = tuple[int, float] | None


class ProfileShape(LoadTestShape):
    """Base of the profile-driven shapes: holds the profile, its resolved params and the clock.

    ``duration_s`` is the planned length of the run in seconds (for StressShape, the upper bound).
    """

    abstract = True
    shape: ClassVar[str] = ""
    profile_name: ClassVar[str | None] = None  # used when no profile is passed (Locust instantiates with no args)

    def __init__(self, profile: Profile | None = None, *, clock: Callable[[], float] | None = None) -> None:
        if profile is None:
            if self.profile_name is None:
                raise ValueError(f"{type(self).__name__} needs a profile: pass one, or set profile_name on the class")
            profile = load_profile(self.profile_name)
        if profile.shape != self.shape:
            raise ValueError(
                f"profile {profile.name!r} has shape {profile.shape!r}, but {type(self).__name__} runs shape "
                f"{self.shape!r}: use shape_from_profile() to get the matching class"
            )
        self.profile = profile
        given = {k: v for k, v in profile.shape_params.items() if v is not None}
        self.params: dict[str, Any] = resolve_params(profile.shape, given, f"profile {profile.name!r}")
        self._clock = clock or time.perf_counter
        super().__init__()
        self.reset_time()
        self.duration_s = 0.0

    def reset_time(self) -> None:
        """Restart the run clock (Locust calls this when the shape test starts)."""
        self.start_time = self._clock()

    def get_run_time(self) -> float:
        """Seconds since the run started, from the injected clock."""
        return self._clock() - self.start_time


class StepSearch:
    """The stepped search behind both stress shapes: raise a level (users, or a rate in requests/s) by ``step``
    from ``first`` until a threshold breaks, ``maximum`` is held, or ``max_duration_s`` passes.

    Each step lasts at least ``step_s``: at the first ``advance(now_s)`` at or after its end, ``breach_check()`` is
    called (the breached threshold's text, or None). On a breach the search stops; else ``rps_probe()`` (requests/s
    over the step just ended) is recorded and the next step starts. ``unit`` names the level in the steps and the
    result ("users" or "rate"); ``nothing_held`` is what ``highest_ok`` says before any step passed.
    """

    def __init__(
        self,
        unit: str,
        *,
        first: float,
        step: float,
        maximum: float,
        step_s: float,
        max_duration_s: float | None,
        breach_check: Callable[[], str | None],
        rps_probe: Callable[[], float],
        nothing_held: float | None,
    ) -> None:
        self.unit, self.first, self.step, self.maximum = unit, first, step, maximum
        self.step_s, self.max_duration_s = step_s, max_duration_s
        self._breach_check, self._rps_probe, self._nothing_held = breach_check, rps_probe, nothing_held
        self.reset()

    def reset(self) -> None:
        """Start again from ``first`` (a new test)."""
        self.level = self.first
        self.step_started_s = 0.0
        self.stopped_because: str | None = None
        self.steps: list[dict[str, Any]] = []
        self.highest_ok: float | None = self._nothing_held
        self.highest_ok_rps: float | None = None
        self.breach: str | None = None
        self.breached_at: float | None = None

    def steps_to_maximum(self) -> int:
        return math.ceil((self.maximum - self.first) / self.step - 1e-9) + 1

    def advance(self, now_s: float) -> bool:
        """Judge the step if it ended and move on; False once the search has stopped."""
        if self.stopped_because is not None:
            return False
        if now_s - self.step_started_s >= self.step_s:
            breach = self._breach_check()
            step: dict[str, Any] = {self.unit: self.level, "end_s": now_s, "breach": breach, "rps": None}
            self.steps.append(step)
            if breach is not None:
                self.breach, self.breached_at = breach, self.level
                return self._stop("breach")
            self.highest_ok, self.highest_ok_rps = self.level, float(self._rps_probe())
            step["rps"] = self.highest_ok_rps
            if self.level >= self.maximum:
                return self._stop(f"max_{self.unit}")
            self.level = min(self.level + self.step, self.maximum)
            self.step_started_s = now_s
        if self.max_duration_s is not None and now_s >= self.max_duration_s:
            return self._stop("max_duration")
        return True

    def _stop(self, because: str) -> bool:
        self.stopped_because = because
        return False

    def result(self) -> dict[str, Any]:
        """highest_ok_<unit>, highest_ok_rps (req/s over that step, None if no step passed), breach (the threshold
        text, None if none broke), breached_at_<unit>, stopped_because ("breach" | "max_<unit>" | "max_duration" |
        None while running) and the steps so far."""
        return {
            f"highest_ok_{self.unit}": self.highest_ok,
            "highest_ok_rps": self.highest_ok_rps,
            "breach": self.breach,
            f"breached_at_{self.unit}": self.breached_at,
            "stopped_because": self.stopped_because,
            "steps": [dict(s) for s in self.steps],
        }
