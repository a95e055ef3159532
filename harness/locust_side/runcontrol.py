"""Run control: why a run stopped, what its process exits with, and ``-t`` capping a profile's shape.

Stop reasons recorded in metadata.json (``stop_reason``), with ``interrupted`` true for the first two:

    "SIGINT", "SIGTERM"           a signal ended the run (Ctrl-C; ``kill``, docker stop)
    "time limit"                  ``-t`` elapsed (also the web UI's run time field, and ``-t`` capping a profile)
    "shape ended"                 the profile's (or the locustfile's) shape returned None
    "threshold breach"            the stress profile stopped at a breached threshold
    "stopped from the web UI"     the Stop button (POST /stop)
    "quit"                        the process quit for another reason (e.g. --autoquit, all workers gone)

Locust calls its listeners synchronously from the code that stops a run, so ``stop_reason_from_stack`` tells
the reason by the Locust function on the call stack (``stop_and_optionally_quit``'s ``reason`` argument, the
shape worker, the web UI's stop route). Signals are recorded by ``SignalWatch``, which is installed before a run
starts: a signal makes the run stop like Ctrl-C does (KeyboardInterrupt in the main greenlet), so Locust shuts
down once and prints its final tables once.

Exit codes of an interrupted run follow the shell's convention, 128 + the signal's number: 130 for SIGINT, 143
for SIGTERM (harness.report.verdict reads them as interrupted too).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import gevent

__all__ = [
    "INTERRUPTING",
    "SignalWatch",
    "cap_shape",
    "run_limit_refusal",
    "signal_exit_code",
    "stop_reason_from_stack",
]

INTERRUPTING = ("SIGINT", "SIGTERM")
_LOCUST_RUN_TIME_REASON = "--run-time limit reached"


def signal_exit_code(reason: str | None) -> int | None:
    """128 + the signal's number for "SIGINT"/"SIGTERM" (130, 143), else None."""
    if reason in INTERRUPTING:
        return 128 + int(getattr(signal, reason))
    return None


def run_limit_refusal(options: Any) -> str | None:
    """The one-line refusal of a run that could never end well (``-t 0``: no limit at all in Locust, ``-u 0``:
    zero requests; a negative arrival rate, no arrival or connection allowed in flight), or None. Only explicit
    values are refused; an absent option keeps its default."""
    if getattr(options, "run_time", None) == 0:
        return (
            "-t/--run-time 0 is refused: give a positive duration such as -t 30s (or leave -t out to run until stopped)"
        )
    if getattr(options, "num_users", None) == 0:
        return "-u/--users 0 is refused: a run needs at least one user, e.g. -u 10"
    if (getattr(options, "arrival_rate", 0) or 0) < 0:
        return f"--arrival-rate {options.arrival_rate:g} is refused: give requests/s > 0 (leave it out: closed model)"
    for flag, dest in (("--max-in-flight", "max_in_flight"), ("--connections", "connections")):
        value = getattr(options, dest, None)
        if value is not None and value < 1:
            return f"{flag} {value} is refused: it must be at least 1"
    duet = getattr(options, "duet_host", "") or ""
    if duet and getattr(options, "http_client", "lean") != "lean":
        return "--duet-host needs --http-client lean (the duet's split is in the lean transport)"
    if duet and not duet.startswith(("http://", "https://")):
        return f"--duet-host {duet!r} is refused: give a URL such as http://127.0.0.1:8001"
    return None


def stop_reason_from_stack(frame: FrameType | None = None) -> str | None:
    """The reason a run is stopping, from the Locust function on the call stack above ``frame`` (default: the
    caller's), or None when no known one is found."""
    frame = frame or sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        module = frame.f_globals.get("__name__", "")
        if module == "locust.main" and code.co_name == "stop_and_optionally_quit":
            reason = frame.f_locals.get("reason")
            return "time limit" if reason == _LOCUST_RUN_TIME_REASON else "shape ended"
        if module == "locust.main" and code.co_name == "sig_term_handler":
            return "SIGTERM"
        if module == "locust.runners" and code.co_name == "shape_worker":
            return "shape ended"
        if module == "locust.web" and code.co_name == "_stop_runners":
            return "time limit"
        if module == "locust.web" and code.co_name == "stop":
            return "stopped from the web UI"
        frame = frame.f_back
    return None


class SignalWatch:
    """Records SIGINT and SIGTERM and turns both into a KeyboardInterrupt in the main greenlet, the path Locust
    takes on Ctrl-C: it stops the run, fires ``quitting`` and prints its final tables, once.

    ``signal_name`` is the first signal received (None before one). An inherited SIG_IGN for SIGINT (a
    background job of a non-interactive shell) is kept. Locust later installs its own SIGTERM handler (which
    runs its shutdown in a second greenlet while the main one runs it too: two final tables);
    ``from_locust_sigterm()`` is called by the quitting listener to take that path over.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def install(self) -> None:
        """Install the handlers (from the main thread)."""
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = name
        main = gevent.get_hub().parent
        if gevent.getcurrent() is main:
            raise KeyboardInterrupt(name)
        # Raised in the hub or a user's greenlet, gevent would print it as a traceback before passing it on.
        gevent.get_hub().loop.run_callback(main.throw, KeyboardInterrupt(name))

    def from_locust_sigterm(self) -> None:
        """Called from a quitting listener: if Locust's own SIGTERM handler is running its shutdown in a side
        greenlet, record SIGTERM and hand the shutdown to the main greenlet instead (a KeyboardInterrupt there),
        so that it happens once. Returns normally in every other case."""
        if stop_reason_from_stack() != "SIGTERM":
            return
        if self.signal_name is None:
            self.signal_name = "SIGTERM"
        main = gevent.get_hub().parent
        if gevent.getcurrent() is not main:
            main.throw(KeyboardInterrupt("SIGTERM"))


def cap_shape(shape: Any, limit_s: float, on_cap: Callable[[], None]) -> None:
    """Make ``shape`` (a LoadTestShape instance) end once ``limit_s`` seconds of its run time have passed:
    its ``tick()`` returns None from then on, after calling ``on_cap()`` once. The shape's own end still
    applies when it comes first. ``shape.run_time_cap_s`` records the cap."""
    tick = shape.tick
    capped = {"done": False}

    def capped_tick() -> Any:
        if shape.get_run_time() >= limit_s:
            if not capped["done"]:
                capped["done"] = True
                on_cap()
            return None
        return tick()

    shape.tick = capped_tick
    shape.run_time_cap_s = limit_s
    reset = shape.reset_time

    def reset_time() -> None:
        capped["done"] = False
        reset()

    shape.reset_time = reset_time
