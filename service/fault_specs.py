"""The syntax of the fault settings, shared by ``service.settings`` (which validates them at start-up) and
``service.faults`` (which injects them): an ``inject_delay_route`` value as a compiled pattern, an ``inject_stall``
value as (stall_s, every_s). Pure parsing: no I/O, no settings object, so both modules can stand on it.
"""

from __future__ import annotations

import re

__all__ = ["parse_stall", "route_pattern"]

_TEMPLATE_PARAM = re.compile(r"\{[^{}/]+\}")


def route_pattern(route: str) -> re.Pattern[str]:
    """The compiled pattern for an ``inject_delay_route`` value (see ``service.faults``).

    Raises ValueError (with what would be right) for an invalid regular expression.
    """
    if _TEMPLATE_PARAM.search(route):
        parts = _TEMPLATE_PARAM.split(route)
        return re.compile("[^/]+".join(re.escape(part) for part in parts) + r"\Z")
    try:
        return re.compile(route)
    except re.error as error:
        raise ValueError(
            f"inject_delay_route={route!r} is invalid: {error}; expected a route template such as "
            "'/v1/online/{group}/{feature}/{entity_id}', a path prefix or a regular expression"
        ) from None


def parse_stall(text: str) -> tuple[float, float]:
    """``"SECONDS/EVERY"`` (e.g. ``"1/10"``) as (stall_s, every_s); raises ValueError saying what is expected."""
    stall, sep, every = text.partition("/")
    try:
        stall_s, every_s = float(stall), float(every)
    except ValueError:
        stall_s = every_s = float("nan")
    if not sep or not (0 < stall_s < every_s <= 3600):
        raise ValueError(
            f"inject_stall={text!r} is invalid: expected SECONDS/EVERY with 0 < SECONDS < EVERY <= 3600, e.g. '1/10' "
            "(freeze the event loop 1 s in every 10 s)"
        )
    return stall_s, every_s
