"""Load profiles: named TOML files (``profiles/<name>.toml``) and the Locust load shapes that run them.

The shapes are imported lazily: ``import locust`` monkey-patches the process with gevent, which a tool that only
reads profiles (a report, a CLI listing them) must not pay for or be surprised by.
"""

from __future__ import annotations

from typing import Any

from profiles.model import Profile, Stage, list_profiles, load_profile

_SHAPE_NAMES = (
    "ProfileShape",
    "RampShape",
    "SoakShape",
    "SpikeShape",
    "StagesShape",
    "StepShape",
    "StressShape",
    "shape_from_profile",
)

__all__ = ["Profile", "Stage", "list_profiles", "load_profile", *_SHAPE_NAMES]


def __getattr__(name: str) -> Any:
    if name in _SHAPE_NAMES:
        from profiles import shapes  # imports locust, which monkey-patches with gevent

        return getattr(shapes, name)
    raise AttributeError(f"module 'profiles' has no attribute {name!r}")
