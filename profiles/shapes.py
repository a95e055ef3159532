"""Locust load shapes built from a ``Profile``.

Every class here is ``abstract = True``, so a locustfile that merely imports one is not given it as its shape
(Locust's ``LoadTestShapeMeta`` makes any class that does not say ``abstract = True`` concrete, and Locust then
instantiates it with no arguments). To use one from a locustfile, subclass it and name the profile::

    class Shape(RampShape):
        profile_name = "ramp"      # profiles/ramp.toml; the subclass is concrete, so Locust picks it up

or build one in code with ``shape_from_profile(load_profile("ramp"))`` and hand it to ``Environment``.

Time is read through an injectable ``clock`` (seconds, monotonic; default ``time.perf_counter``), so ``tick()``
is a pure function of the run time and tests drive it with a fake clock. User counts on ramps are the floor of
the straight line between the end points. ``tick()`` returns ``(users, spawn_rate users/s)`` or None to stop.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable
from typing import Any

from profiles import rate_shapes  # the module, not its classes: this namespace lists the closed-model shapes only
from profiles.model import Profile
from profiles.shape_base import ProfileShape, StepSearch, Tick

__all__ = [
    "ProfileShape",
    "RampShape",
    "SoakShape",
    "SpikeShape",
    "StagesShape",
    "StepSearch",
    "StepShape",
    "StressShape",
    "shape_from_profile",
]


def _line(t_s: float, span_s: float, from_users: int, to_users: int) -> int:
    """Users on the straight line from ``from_users`` (t=0) to ``to_users`` (t=span_s), floored."""
    return math.floor(from_users + (to_users - from_users) * t_s / span_s + 1e-9)


class StagesShape(ProfileShape):
    """Runs the profile's stages one after another: stage i holds ``users`` (started at ``spawn_rate``/s) from
    the sum of the earlier stages' durations until its own end; stops after the last stage."""

    abstract = True
    shape = "stages"

    def __init__(self, profile: Profile | None = None, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(profile, clock=clock)
        if not self.profile.stages:
            raise ValueError(f"profile {self.profile.name!r}: shape 'stages' needs at least one [[stages]] table")
        self._ends_s = list(itertools.accumulate(s.duration_s for s in self.profile.stages))
        self.duration_s = self._ends_s[-1]

    def tick(self) -> Tick:
        i = bisect.bisect_right(self._ends_s, self.get_run_time())
        if i >= len(self._ends_s):
            return None
        stage = self.profile.stages[i]
        return stage.users, stage.spawn_rate


class RampShape(ProfileShape):
    """Linear ramp from ``start_users`` to ``peak_users`` over ``ramp_s``, hold for ``hold_s``, then (if
    ``ramp_down_s`` > 0) linear ramp down to ``end_users``; stops at ramp_s + hold_s + ramp_down_s.

    ``spawn_rate`` defaults to the steeper slope in users/s (at least 1), so Locust keeps up with the line.
    """

    abstract = True
    shape = "ramp"

    def __init__(self, profile: Profile | None = None, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(profile, clock=clock)
        p = self._ramp_params()
        self._start, self._peak, self._end = p["start_users"], p["peak_users"], p["end_users"]
        self._ramp_s, self._hold_s, self._down_s = p["ramp_s"], p["hold_s"], p["ramp_down_s"]
        slopes = [(self._peak - self._start) / self._ramp_s]
        if self._down_s:
            slopes.append((self._peak - self._end) / self._down_s)
        self.spawn_rate = p["spawn_rate"] or max(1.0, *slopes)
        self.duration_s = self._ramp_s + self._hold_s + self._down_s

    def _ramp_params(self) -> dict[str, Any]:
        return self.params

    def tick(self) -> Tick:
        t = self.get_run_time()
        if t < self._ramp_s:
            return _line(t, self._ramp_s, self._start, self._peak), self.spawn_rate
        if t < self._ramp_s + self._hold_s:
            return self._peak, self.spawn_rate
        if t < self.duration_s:
            return _line(t - self._ramp_s - self._hold_s, self._down_s, self._peak, self._end), self.spawn_rate
        return None


class SoakShape(RampShape):
    """Linear ramp from 0 to ``users`` over ``ramp_s``, then a long hold for ``hold_s``; stops after."""

    abstract = True
    shape = "soak"

    def _ramp_params(self) -> dict[str, Any]:
        p = self.params
        return {
            "start_users": 0, "peak_users": p["users"], "end_users": 0, "ramp_s": p["ramp_s"],
            "hold_s": p["hold_s"], "ramp_down_s": 0.0, "spawn_rate": p["spawn_rate"],
        }  # fmt: skip


class StepShape(ProfileShape):
    """``step_users`` more users every ``step_s`` seconds (step k holds min((k+1) * step_users, max_users)),
    then ``hold_s`` more at ``max_users``; ``spawn_rate`` defaults to step_users/s (a step starts within ~1 s)."""

    abstract = True
    shape = "step"

    def __init__(self, profile: Profile | None = None, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(profile, clock=clock)
        p = self.params
        self._step_users, self._step_s, self._max_users = p["step_users"], p["step_s"], p["max_users"]
        self.spawn_rate = p["spawn_rate"] or float(self._step_users)
        self.duration_s = math.ceil(self._max_users / self._step_users) * self._step_s + p["hold_s"]

    def tick(self) -> Tick:
        t = self.get_run_time()
        if t >= self.duration_s:
            return None
        step = math.floor(t / self._step_s + 1e-9)
        return min((step + 1) * self._step_users, self._max_users), self.spawn_rate


class SpikeShape(ProfileShape):
    """``baseline_users`` for ``baseline_s``, a sudden jump to ``spike_users`` for ``spike_s``, back to the
    baseline for ``recovery_s``; stops after. ``spawn_rate`` (default baseline_users/s, at least 1) reaches the
    baseline; ``spike_spawn_rate`` (default spike_users - baseline_users per second) is used up and down."""

    abstract = True
    shape = "spike"

    def __init__(self, profile: Profile | None = None, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(profile, clock=clock)
        p = self.params
        self._baseline, self._spike = p["baseline_users"], p["spike_users"]
        self.spawn_rate = p["spawn_rate"] or max(1.0, float(self._baseline))
        self.spike_spawn_rate = p["spike_spawn_rate"] or float(self._spike - self._baseline)
        self._spike_at_s = p["baseline_s"]
        self._recover_at_s = p["baseline_s"] + p["spike_s"]
        self.duration_s = self._recover_at_s + p["recovery_s"]

    def tick(self) -> Tick:
        t = self.get_run_time()
        if t < self._spike_at_s:
            return self._baseline, self.spawn_rate
        if t < self._recover_at_s:
            return self._spike, self.spike_spawn_rate
        if t < self.duration_s:
            return self._baseline, self.spike_spawn_rate
        return None


class StressShape(ProfileShape):
    """Raise users by ``step_users`` (from ``start_users``) until a threshold breaks or ``max_users`` held
    (``StepSearch``); ``result()`` tells what was found."""

    abstract = True
    shape = "stress"

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
            "users", first=p["start_users"], step=p["step_users"], maximum=p["max_users"], step_s=p["step_s"],
            max_duration_s=p["max_duration_s"], breach_check=breach_check, rps_probe=rps_probe, nothing_held=0,
        )  # fmt: skip
        self.spawn_rate = p["spawn_rate"] or float(p["step_users"])
        self.duration_s = min(self.search.steps_to_maximum() * p["step_s"], p["max_duration_s"] or math.inf)

    def reset_time(self) -> None:
        """Restart the clock and the search (Locust calls this when a shape test starts)."""
        super().reset_time()
        if hasattr(self, "search"):
            self.search.reset()

    def tick(self) -> Tick:
        if not self.search.advance(self.get_run_time()):
            return None
        return int(self.search.level), self.spawn_rate

    def result(self) -> dict[str, Any]:
        """What the search found (``StepSearch.result`` with unit "users")."""
        return self.search.result()


_CLASSES: dict[str, type[ProfileShape]] = {
    cls.shape: cls for cls in (StagesShape, RampShape, StepShape, SpikeShape, SoakShape, StressShape)
}
_STRESS_ONLY = ("breach_check", "rps_probe")


def shape_from_profile(profile: Profile, **collaborators: Any) -> ProfileShape:
    """Build the shape that runs ``profile``.

    Collaborators: ``clock`` (any shape); ``breach_check`` and ``rps_probe`` (required by stress, ignored by the
    others, so a locustfile can pass them whatever the profile). Raises ValueError for a missing or unknown one.
    """
    if unknown := sorted(set(collaborators) - {"clock", *_STRESS_ONLY}):
        raise ValueError(f"unknown collaborator {unknown[0]!r}: shapes take clock, breach_check, rps_probe")
    if profile.shape in ("rate", "stress_rate"):  # the open model's shapes (profiles.rate_shapes)
        if profile.shape == "rate":
            return rate_shapes.RateStagesShape(profile, clock=collaborators.get("clock"))
        rate_cls: type[ProfileShape] = rate_shapes.StressRateShape
        cls = rate_cls
    else:
        cls = _CLASSES[profile.shape]
    if cls is StressShape or profile.shape == "stress_rate":
        if missing := [name for name in _STRESS_ONLY if collaborators.get(name) is None]:
            raise ValueError(
                f"profile {profile.name!r} is a stress profile: pass {' and '.join(f'{m}=...' for m in missing)} "
                "(breach_check() -> breached threshold text or None; rps_probe() -> requests/s over the last step)"
            )
        return cls(profile, **collaborators)  # type: ignore[call-arg]
    return cls(profile, clock=collaborators.get("clock"))
