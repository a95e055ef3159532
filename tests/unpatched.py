"""Import Locust-dependent modules into the pytest process without gevent's monkey-patching.

``import locust`` gevent-patches the whole process (threads become greenlets) unless LOCUST_SKIP_MONKEY_PATCH is
set. Tests that only need Locust's classes import under ``locust_unpatched()``; the variable is restored at once, so
``python -m locust`` subprocesses started by other tests are patched as usual.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["locust_unpatched"]

_VARIABLE = "LOCUST_SKIP_MONKEY_PATCH"


@contextmanager
def locust_unpatched() -> Iterator[None]:
    """Set LOCUST_SKIP_MONKEY_PATCH for the ``with`` block, then put back what was there."""
    saved = os.environ.get(_VARIABLE)
    os.environ[_VARIABLE] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[_VARIABLE]
        else:
            os.environ[_VARIABLE] = saved
