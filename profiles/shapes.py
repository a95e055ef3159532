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
import time
from collections.abc import Callable
from typing import Any, ClassVar

from locust import LoadTestShape

from profiles.model import Profile, load_profile, resolve_params

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
        from profiles.rate_shapes import RateStagesShape, StressRateShape

        if profile.shape == "rate":
            return RateStagesShape(profile, clock=collaborators.get("clock"))
        rate_cls: type[ProfileShape] = StressRateShape
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
