"""Group and feature names: one strict pattern, so a name can never leave the store's base path.

A valid name is 1-128 characters from ``[A-Za-z0-9_-]`` and starts with a letter or a digit. That rules out
``..``, ``/``, ``\\``, absolute paths, NUL, whitespace and hidden files (the store's own ``.staging`` and
``.locks``), and leaves names starting with ``_`` free for its ``_current.json``, so they never collide with user
data.
"""

from __future__ import annotations

import re

__all__ = ["NAME_PATTERN", "validate_name"]

NAME_MAX_LENGTH = 128
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_RULE = f"use [A-Za-z0-9_-], 1-{NAME_MAX_LENGTH} chars, starting with a letter or digit"


def validate_name(kind: str, name: object) -> str:
    """Return ``name`` unchanged when it is a valid group or feature name.

    ``kind`` is what the name is for ("group", "feature"), used in the message.
    Raises ValueError saying what was wrong and what would be right.
    """
    if not isinstance(name, str):
        raise ValueError(f"{kind} name must be a string, got {type(name).__name__}")
    if NAME_PATTERN.fullmatch(name) is None:
        shown = name if len(name) <= 40 else name[:37] + "..."
        if not name:
            reason = "it is empty"
        elif len(name) > NAME_MAX_LENGTH:
            reason = f"it is {len(name)} chars long"
        elif "\x00" in name:
            reason = "it contains a NUL byte"
        elif any(sep in name for sep in ("/", "\\")) or name.startswith(".."):
            reason = "it could leave the store's base path"
        else:
            reason = "it has characters outside the allowed set"
        raise ValueError(f"{kind} name {shown!r} is invalid ({reason}): {_RULE}")
    return name
