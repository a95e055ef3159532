"""What the console shows of a headless run: one progress line instead of Locust's stats table every 2 s, and
at the end the verdict with the exit code and the findings with their suggestions.

    progress 0:42 elapsed, 0:18 left | 100 users | 812.4 req/s | p95 14 ms | 3 failures (0.01%)

Figures are Locust's live counters: req/s and p95 over about the last 10 s (Locust's current_rps and its
response-times cache, CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW), failures over the whole run so far. The end of
the run reports the exact figures from the run directory. On a terminal the line is rewritten in place
(``\\r``) every TTY_INTERVAL_S seconds; otherwise a plain line is written every PLAIN_INTERVAL_S seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import gevent

__all__ = [
    "EXIT_CODE_MEANINGS",
    "PLAIN_INTERVAL_S",
    "TTY_INTERVAL_S",
    "Progress",
    "ProgressFigures",
    "end_lines",
    "format_clock",
    "progress_for",
    "progress_line",
]

TTY_INTERVAL_S = 2.0
PLAIN_INTERVAL_S = 10.0


@dataclass(frozen=True)
class ProgressFigures:
    """What one progress line shows. ``remaining_s`` None: the run has no planned end (no -t, no profile)."""

    elapsed_s: float
    remaining_s: float | None
    users: int
    rps: float
    p95_ms: float | None
    requests: int
    failures: int


def format_clock(seconds: float) -> str:
    """``seconds`` as m:ss, or h:mm:ss from an hour on."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(figures: ProgressFigures) -> str:
    """The one-line summary of a run in progress (see the module docstring)."""
    f = figures
    left = f", {format_clock(f.remaining_s)} left" if f.remaining_s is not None else ""
    p95 = f"{f.p95_ms:,.0f} ms" if f.p95_ms is not None else "-"
    ratio = f.failures / f.requests * 100 if f.requests else 0.0
    return (
        f"progress {format_clock(f.elapsed_s)} elapsed{left} | {f.users} users | {f.rps:,.1f} req/s | p95 {p95} | "
        f"{f.failures:,} failures ({ratio:.2f}%)"
    )


class Progress:
    """Writes the progress line of ``environment``'s run to ``stream`` while the test runs.

    ``planned_s`` returns the run's planned length in seconds (None: unknown); ``clock`` is monotonic seconds."""

    def __init__(
        self,
        environment: Any,
        stream: TextIO,
        *,
        planned_s: Callable[[], float | None],
        is_tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.environment = environment
        self.stream = stream
        self.planned_s = planned_s
        self.is_tty = stream.isatty() if is_tty is None else is_tty
        self.interval_s = TTY_INTERVAL_S if self.is_tty else PLAIN_INTERVAL_S
        self._clock = clock
        self._started: float | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._pending_newline = False

    def figures(self) -> ProgressFigures:
        """The live figures, from Locust's counters."""
        total = self.environment.runner.stats.total
        elapsed_s = self._clock() - self._started if self._started is not None else 0.0
        planned = self.planned_s()
        p95 = total.get_current_response_time_percentile(0.95) if total.num_requests else None
        return ProgressFigures(
            elapsed_s=elapsed_s,
            remaining_s=max(0.0, planned - elapsed_s) if planned is not None else None,
            users=int(self.environment.runner.user_count),
            rps=float(total.current_rps or 0.0),
            p95_ms=float(p95) if p95 is not None else None,
            requests=int(total.num_requests),
            failures=int(total.num_failures),
        )

    def write(self) -> None:
        """Write the line once: rewritten in place on a terminal, a new line otherwise."""
        line = progress_line(self.figures())
        if self.is_tty:
            self.stream.write(f"\r\033[K{line}")
            self._pending_newline = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def start(self) -> None:
        """Start the clock and the greenlet that writes the line every ``interval_s`` seconds."""
        self.stop()
        self._started = self._clock()
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.interval_s)
            self.write()

    def stop(self) -> None:
        """Stop writing; end the in-place line so that what follows starts on its own line."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        if self._pending_newline:
            self.stream.write("\n")
            self.stream.flush()
            self._pending_newline = False


def progress_for(environment: Any, stream: TextIO) -> Progress | None:
    """The Progress of a headless run on the master (or only) process, with Locust's periodic stats table turned
    off (its ``--only-summary``; the table prints before the main loop reads it, so this runs at init). None when
    the user asked for the table (``--no-progress``, ``--print-stats``) or the run has a web UI."""
    options = environment.parsed_options
    if not options.headless or getattr(options, "worker", False) or not getattr(options, "progress", True):
        return None
    if options.print_stats:
        return None
    options.only_summary = True

    def planned_s() -> float | None:
        limits = [float(options.run_time)] if options.run_time else []
        shape = environment.shape_class
        if shape is not None and getattr(shape, "duration_s", 0):
            limits.append(float(shape.duration_s))
        return min(limits) if limits else None

    return Progress(environment, stream, planned_s=planned_s)


# What each exit code of a harness run means (Locust's own 0-2, the harness's 3, a signal's 128 + N).
EXIT_CODE_MEANINGS = {
    0: "passed",
    1: "requests failed (Locust's --exit-code-on-error)",
    2: "the run could not start, crashed, or could not be recorded",
    3: "threshold breached or not measurable",
    130: "interrupted (SIGINT)",
    143: "interrupted (SIGTERM)",
}


def end_lines(verdict: str | None, exit_code: int, findings: list[Any]) -> list[str]:
    """The run's last lines: the verdict with the exit code and its meaning, then each finding (analysis.Finding:
    severity, message) with its suggestion."""
    meaning = EXIT_CODE_MEANINGS.get(exit_code, "see --exit-code-on-error")
    lines = [f"Verdict: {verdict or 'NOT RECORDED'} (exit code {exit_code}: {meaning})"]
    for finding in findings:
        lines.append(f"  finding ({finding.severity}): {finding.message}")
        if finding.suggestion:
            lines.append(f"    suggestion: {finding.suggestion}")
    return lines
