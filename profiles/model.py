"""Named load profiles: a TOML file per profile, validated into a ``Profile``.

File format (``profiles/<name>.toml``; the profile's name is the file's stem)::

    description = "Linear ramp to 50 users, hold, ramp down"
    shape = "ramp"                      # ramp | step | spike | soak | stress | stages | rate | stress_rate
    thresholds = ["p95 < 50ms", "failure_ratio < 1%"]   # profiles.threshold_syntax

    [params]                            # the shape's parameters, see SHAPE_PARAMS
    peak_users = 50
    ramp_s = 60

    # only for shape = "stages": one table per stage, run one after another
    [[stages]]
    duration_s = 5
    users = 2
    spawn_rate = 2

    # shape = "rate" (the open model, harness.timing.arrivals): one table per stage, the total arrival rate in
    # requests/s
    [[stages]]
    duration_s = 30
    rate = 500

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profiles.threshold_syntax import Threshold

__all__ = [
    "PACKAGE_DIR",
    "RATE_SHAPES",
    "SHAPES",
    "SHAPE_PARAMS",
    "Profile",
    "Stage",
    "list_profiles",
    "load_profile",
    "profile_from_dict",
    "resolve_params",
]

PACKAGE_DIR = Path(__file__).resolve().parent
SHAPES = ("ramp", "step", "spike", "soak", "stress", "stages", "rate", "stress_rate")
RATE_SHAPES = ("rate", "stress_rate")  # open-model shapes: they plan arrivals per second, not users


@dataclass(frozen=True)
class _Param:
    """One shape parameter: ``kind`` "users" (an int >= ``minimum``) or "seconds"/"rate" (a number > 0, or >= 0
    when the default is 0); ``default`` None on an optional parameter means "the shape computes it"."""

    kind: str
    required: bool = False
    default: float | None = None
    minimum: int = 0


_USERS, _USERS1 = _Param("users"), _Param("users", required=True, minimum=1)
_SECONDS, _SECONDS0 = _Param("seconds", required=True), _Param("seconds", default=0.0)
_RATE = _Param("rate")  # users started (or stopped) per second; None: the shape picks one, see profiles.shapes

SHAPE_PARAMS: dict[str, dict[str, _Param]] = {
    "stages": {},
    "ramp": {
        "start_users": _Param("users", default=0), "peak_users": _USERS1, "ramp_s": _SECONDS, "hold_s": _SECONDS0,
        "ramp_down_s": _SECONDS0, "end_users": _Param("users", default=0), "spawn_rate": _RATE,
    },
    "step": {"step_users": _USERS1, "step_s": _SECONDS, "max_users": _USERS1, "hold_s": _SECONDS0, "spawn_rate": _RATE},
    "spike": {
        "baseline_users": _Param("users", required=True), "baseline_s": _SECONDS, "spike_users": _USERS1,
        "spike_s": _SECONDS, "recovery_s": _SECONDS, "spawn_rate": _RATE, "spike_spawn_rate": _RATE,
    },
    "soak": {"users": _USERS1, "ramp_s": _SECONDS, "hold_s": _SECONDS, "spawn_rate": _RATE},
    "stress": {
        "start_users": _Param("users", minimum=1), "step_users": _USERS1, "step_s": _SECONDS, "max_users": _USERS1,
        "spawn_rate": _RATE, "max_duration_s": _Param("seconds"),
    },
    "rate": {},
    "stress_rate": {
        "start_rate": _Param("arrivals"), "step_rate": _Param("arrivals", required=True), "step_s": _SECONDS,
        "max_rate": _Param("arrivals", required=True), "max_duration_s": _Param("seconds"),
    },
}  # fmt: skip
_TOP_KEYS = ("description", "shape", "thresholds", "params", "stages")
_STAGE_KEYS = ("duration_s", "users", "spawn_rate")
_RATE_STAGE_KEYS = ("duration_s", "rate")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Stage:
    """Hold ``users`` users, started at ``spawn_rate`` users/s, for ``duration_s`` seconds; in a rate profile
    (``rate`` set, requests/s in total) the users are the open model's schedulers, one per Locust process."""

    duration_s: float
    users: int
    spawn_rate: float
    rate: float | None = None


@dataclass(frozen=True)
class Profile:
    """A validated load profile. ``shape_params`` holds every parameter of the shape, defaults filled in
    (None where the shape computes the value); ``stages`` is empty unless ``shape == "stages"``."""

    name: str
    description: str
    shape: str
    stages: list[Stage] = field(default_factory=list)
    thresholds: list[str] = field(default_factory=list)
    shape_params: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(where: str, name: str, value: object, kind: str, *, minimum: int = 0, allow_zero: bool = False) -> Any:
    """One value: 'users' must be an int >= ``minimum``; 'seconds' and 'rate' a number > 0 (>= 0 with
    ``allow_zero``). Returns an int for users, a float otherwise; raises ValueError naming ``where`` and ``name``."""
    if kind == "users":
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
        return value
    if not _is_number(value) or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        unit = {"seconds": "seconds", "arrivals": "requests per second"}.get(kind, "users per second")
        raise ValueError(f"{where}: {name} must be a number {'>=' if allow_zero else '>'} 0 ({unit}), got {value!r}")
    return float(value)  # type: ignore[arg-type]


def resolve_params(shape: str, params: dict[str, Any], where: str = "<profile>") -> dict[str, Any]:
    """Validate a shape's parameters and fill in defaults; raises ValueError naming ``where`` and the field.

    Seconds and rates come back as float, user counts as int; optional parameters without a default are None.
    """
    if shape not in SHAPE_PARAMS:
        raise ValueError(f"{where}: shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    spec = SHAPE_PARAMS[shape]
    if unknown := sorted(set(params) - set(spec)):
        known = ", ".join(spec) or "none"
        raise ValueError(f"{where}: params.{unknown[0]} is not a parameter of shape {shape!r} (known: {known})")
    resolved: dict[str, Any] = {}
    for name, p in spec.items():
        if name not in params:
            if p.required:
                raise ValueError(f"{where}: params.{name} is required for shape {shape!r}")
            resolved[name] = p.default
            continue
        resolved[name] = _check(
            where, f"params.{name}", params[name], p.kind, minimum=p.minimum, allow_zero=p.default == 0
        )
    _check_relations(shape, resolved, where)
    return resolved


def _check_relations(shape: str, p: dict[str, Any], where: str) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ValueError(f"{where}: {message}")

    if shape == "ramp":
        need(p["peak_users"] > p["start_users"], f"params.peak_users ({p['peak_users']}) must exceed start_users")
        need(p["end_users"] <= p["peak_users"], f"params.end_users ({p['end_users']}) must be <= peak_users")
    elif shape == "spike":
        need(p["spike_users"] > p["baseline_users"], "params.spike_users must exceed params.baseline_users")
    elif shape == "stress":
        p["start_users"] = p["start_users"] or p["step_users"]
        need(p["start_users"] <= p["max_users"], "params.start_users must be <= params.max_users")
    elif shape == "stress_rate":
        p["start_rate"] = p["start_rate"] or p["step_rate"]
        need(p["start_rate"] <= p["max_rate"], "params.start_rate must be <= params.max_rate")


def _stages(raw: object, where: str) -> list[Stage]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: stages must be a non-empty array of tables ([[stages]]), got {raw!r}")
    stages = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"{where}: stages[{i}] must be a table with {', '.join(_STAGE_KEYS)}, got {item!r}")
        if unknown := sorted(set(item) - set(_STAGE_KEYS)):
            raise ValueError(f"{where}: stages[{i}].{unknown[0]} is unknown (known: {', '.join(_STAGE_KEYS)})")
        if missing := [k for k in _STAGE_KEYS if k not in item]:
            raise ValueError(f"{where}: stages[{i}].{missing[0]} is required")
        stages.append(
            Stage(
                duration_s=_check(where, f"stages[{i}].duration_s", item["duration_s"], "seconds"),
                users=_check(where, f"stages[{i}].users", item["users"], "users"),
                spawn_rate=_check(where, f"stages[{i}].spawn_rate", item["spawn_rate"], "rate"),
            )
        )
    return stages


def _rate_stages(raw: object, where: str) -> list[Stage]:
    """[[stages]] of a rate profile: duration_s and rate (requests/s in total, >= 0)."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: a rate profile needs [[stages]] tables with duration_s and rate, got {raw!r}")
    stages = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"{where}: stages[{i}] must be a table with duration_s and rate, got {item!r}")
        if unknown := sorted(set(item) - set(_RATE_STAGE_KEYS)):
            known = ", ".join(_RATE_STAGE_KEYS)
            raise ValueError(f"{where}: stages[{i}].{unknown[0]} is unknown in a rate profile (known: {known})")
        if missing := [k for k in _RATE_STAGE_KEYS if k not in item]:
            raise ValueError(f"{where}: stages[{i}].{missing[0]} is required")
        duration_s = _check(where, f"stages[{i}].duration_s", item["duration_s"], "seconds")
        rate = item["rate"]
        if not _is_number(rate) or rate < 0:
            raise ValueError(f"{where}: stages[{i}].rate must be a number >= 0 (requests/s), got {rate!r}")
        stages.append(Stage(duration_s=duration_s, users=1, spawn_rate=1.0, rate=float(rate)))
    return stages


def profile_from_dict(data: dict[str, Any], name: str, source: Path | None = None) -> Profile:
    """Validate a parsed TOML document into a Profile; errors name the file (or ``name``) and the field."""
    where = _display(source) if source is not None else f"profile {name!r}"
    if unknown := sorted(set(data) - set(_TOP_KEYS)):
        raise ValueError(f"{where}: {unknown[0]} is not a profile key (known: {', '.join(_TOP_KEYS)})")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"{where}: description must be a non-empty string, got {description!r}")
    shape = data.get("shape")
    if shape not in SHAPES:
        raise ValueError(f"{where}: shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"{where}: params must be a table ([params]), got {params!r}")
    if shape == "stages":
        stages = _stages(data.get("stages"), where)
    elif shape == "rate":
        stages = _rate_stages(data.get("stages"), where)
    elif "stages" in data:
        raise ValueError(f"{where}: stages is only used by shapes 'stages' and 'rate'; shape {shape!r} takes [params]")
    else:
        stages = []
    thresholds = data.get("thresholds", [])
    if not isinstance(thresholds, list):
        raise ValueError(f"{where}: thresholds must be an array of strings, got {thresholds!r}")
    for i, text in enumerate(thresholds):
        if not isinstance(text, str):
            raise ValueError(f"{where}: thresholds[{i}] must be a string like 'p95 < 50ms', got {text!r}")
        try:
            Threshold.parse(text)
        except ValueError as exc:
            raise ValueError(f"{where}: thresholds[{i}]: {exc}") from None
    return Profile(
        name=name,
        description=description.strip(),
        shape=shape,
        stages=stages,
        thresholds=list(thresholds),
        shape_params=resolve_params(shape, params, where),
        source=source,
    )


def list_profiles(search_dir: Path = PACKAGE_DIR) -> list[str]:
    """Names of the profiles in ``search_dir`` (the stems of its *.toml files), sorted."""
    return sorted(p.stem for p in Path(search_dir).glob("*.toml"))


def load_profile(name_or_path: str | Path, search_dir: Path = PACKAGE_DIR) -> Profile:
    """Load ``<search_dir>/<name>.toml``, or an explicit path ending in .toml.

    Raises ValueError naming the file and the field for anything invalid, and for an unknown name or a missing
    file (listing the names that exist).
    """
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"profile file {text!r} does not exist")
    else:
        if not _NAME_RE.fullmatch(text):
            raise ValueError(f"profile name {text!r} is invalid: use [A-Za-z0-9_-], 1-64 chars, or a .toml path")
        path = Path(search_dir) / f"{text}.toml"
        if not path.is_file():
            known = ", ".join(list_profiles(search_dir)) or "none"
            raise ValueError(f"unknown profile {text!r} in {_display(Path(search_dir))}: known profiles: {known}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{_display(path)}: invalid TOML: {exc}") from None
    return profile_from_dict(data, name=path.stem, source=path)
