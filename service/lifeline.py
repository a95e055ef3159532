"""Die with the parent: Linux's parent-death signal, so no process outlives the one that started it.

``die_with_parent()`` asks the kernel to SIGKILL the calling process when its parent exits (prctl
PR_SET_PDEATHSIG); ``preexec_die_with_parent()`` gives a ``subprocess.Popen(preexec_fn=...)`` that does it in
the child before exec. The signal fires when the *thread* that forked the child exits, so start children from
a thread that lives as long as they should (the main thread). Elsewhere than Linux both are no-ops.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent", "die_with_spawning_parent", "preexec_die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent_pid: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Have ``sig`` sent to this process when its parent exits; returns False where that is not supported.

    If ``expected_parent_pid`` is given and the parent is already gone (the race between fork and this call),
    the process kills itself at once with ``sig``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if expected_parent_pid is not None and os.getppid() != expected_parent_pid:
        os.kill(os.getpid(), sig)
    return True


def die_with_spawning_parent() -> bool:
    """In a ``multiprocessing`` child (such as a uvicorn worker): die with the process that spawned it.

    Does nothing (returns False) in a process that multiprocessing did not start, e.g. ``python -m service``
    run from a shell, which must not die with that shell.
    """
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return False
    return die_with_parent(parent.pid)


def preexec_die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` making the child die with this process (the pid is taken now, before the fork)."""
    parent_pid = os.getpid()

    def _preexec() -> None:
        die_with_parent(parent_pid)

    return _preexec
