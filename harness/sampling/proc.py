"""Which processes the sampler follows, and what it reads from each (psutil).

Discovery is incremental because reading every process on a busy host each tick would cost more than the
sampler's whole budget (about 0.1 ms per process): each tick lists the pids, reads the parent pid (and, when a
pattern target exists, the command line) of NEW pids only, and re-reads the command line of a pid on its second
tick (a fork shows its parent's command line until it execs) and of every unfollowed pid every
``rescan_every_ticks`` ticks (a later exec). A followed pid stays followed, with its first role, until it exits.
The sampler's own process is followed as "sampler", never under a target's role, and a target's tree stops at
it: what the sampler's process started is followed only when a target selects it itself (by pid or pattern), as
when the sampler runs inside the process that launched the service.
A pattern never matches a command line containing ``SAMPLER_MARK`` (a wrapper such as ``timeout`` or ``sh -c``
that started the sampler repeats the pattern in its own command line). A followed pid reused by a new process is
noticed (psutil's ppid() compares creation times) and recorded as exited; the newcomer is not followed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psutil

from harness.recording.redact import redact_argv

__all__ = ["CMDLINE_CHARS", "RESERVED_ROLES", "SAMPLER_MARK", "ProcessTarget", "ProcessTracker", "Tick"]

CMDLINE_CHARS = 200
RESERVED_ROLES = ("host", "sampler")  # scopes the sampler writes itself
# Patterns never match a sampler's command line: a wrapper that started it (timeout, sh -c) repeats its arguments,
# so `--match uvicorn` would otherwise follow the wrapper. The sampler itself is recognised by pid.
SAMPLER_MARK = "harness.sampling.sampler"
AGENT_MARK = "harness.sampling.agent"  # the agent reads the same way and repeats its --match patterns too
_ROLE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_T = TypeVar("_T")


@dataclass(frozen=True)
class ProcessTarget:
    """Processes to follow under ``role``: the process ``pid`` or every process whose command line matches
    ``pattern`` (``re.search`` on the arguments joined by spaces), with their descendants unless
    ``include_children`` is False. Raises ValueError for a bad role, both or neither of pid/pattern, or a bad regex.
    """

    role: str
    pid: int | None = None
    pattern: str | None = None
    include_children: bool = True
    regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _ROLE_RE.fullmatch(self.role) or self.role in RESERVED_ROLES:
            raise ValueError(
                f"role {self.role!r} is invalid: use [A-Za-z0-9_-], 1-64 chars, not {' or '.join(RESERVED_ROLES)}"
            )
        if (self.pid is None) == (self.pattern is None):
            raise ValueError(f"target {self.role!r}: give exactly one of pid or pattern")
        if self.pid is not None and self.pid <= 0:
            raise ValueError(f"target {self.role!r}: pid must be a positive integer, got {self.pid}")
        if self.pattern is not None:
            try:
                object.__setattr__(self, "regex", re.compile(self.pattern))
            except re.error as exc:
                raise ValueError(f"target {self.role!r}: pattern {self.pattern!r} is not a regex: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        """How this target selects processes, for sampler.json."""
        return {"role": self.role, "pid": self.pid, "pattern": self.pattern, "include_children": self.include_children}


@dataclass
class _Known:
    """A pid seen in the process list: its parent and (only when patterns are in use) its command line."""

    proc: psutil.Process
    ppid: int | None
    cmdline: str | None = None
    ticks: int = 0


@dataclass
class _Followed:
    proc: psutil.Process
    role: str
    name: str | None = None
    cmdline: str | None = None
    cpu_s: float | None = None  # user + system CPU seconds at the previous read
    read_at_s: float | None = None  # monotonic seconds of the previous read


@dataclass
class Tick:
    """What one discovery-and-read pass found: rows in SAMPLE_SCHEMA order minus ts_s, and what changed."""

    rows: list[tuple[Any, ...]]
    started: list[tuple[int, str]]  # (pid, role) followed from this tick on
    exited: list[int]


def _allowed(read: Callable[[], _T]) -> _T | None:
    """``read()``, or None when the OS does not let us read that field of that process."""
    try:
        return read()
    except psutil.AccessDenied:
        return None


class ProcessTracker:
    """Follows the targets' processes (and ``own_pid`` as ``own_role``, "sampler" unless told otherwise: a worker
    sampling itself in-process is a generator) and reads one row per process per tick.

    ``own_pid`` is never followed under a target's role and target trees stop at it. ``logical_cores`` turns
    one-core percent into machine percent; ``monotonic`` times the CPU intervals. Not thread-safe.
    """

    def __init__(
        self,
        targets: Sequence[ProcessTarget],
        own_pid: int | None = None,
        *,
        own_role: str = "sampler",
        uss: bool = False,
        logical_cores: int | None = None,
        rescan_every_ticks: int = 10,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.targets = list(targets)
        self.own_pid = os.getpid() if own_pid is None else own_pid
        self.own_role = own_role
        self.uss = uss
        self.logical_cores = logical_cores or psutil.cpu_count(logical=True) or 1
        self._rescan_every = max(1, rescan_every_ticks)
        self._monotonic = monotonic
        self._patterns = any(t.regex is not None for t in self.targets)
        self._known: dict[int, _Known] = {}
        self._followed: dict[int, _Followed] = {}
        self._finished: set[int] = set()  # exited but still listed (zombies): not followed again
        self._ticks = 0

    def tick(self) -> Tick:
        """Discover new processes, then read every followed one; exited processes are reported, never raised."""
        self._ticks += 1
        pids = set(psutil.pids())
        self._refresh(pids)
        started = self._discover()
        rows, exited = [], [pid for pid in self._followed if pid not in pids]
        for pid, followed in self._followed.items():
            if pid in pids:
                row = self._read(pid, followed)
                if row is None:
                    exited.append(pid)
                else:
                    rows.append(row)
        for pid in exited:
            del self._followed[pid]
            if pid in pids:
                self._finished.add(pid)
        return Tick(rows, started, exited)

    def _refresh(self, pids: set[int]) -> None:
        for pid in [pid for pid in self._known if pid not in pids]:
            del self._known[pid]
            self._finished.discard(pid)
        rescan = self._patterns and self._ticks % self._rescan_every == 0
        for pid in pids:
            known = self._known.get(pid)
            if known is None:
                try:
                    proc = psutil.Process(pid)
                    with proc.oneshot():
                        known = _Known(proc, proc.ppid())
                except psutil.Error:
                    continue  # gone already (or unreadable): nothing to follow
                self._known[pid] = known
            known.ticks += 1
            if self._patterns and (known.ticks <= 2 or (rescan and pid not in self._followed)):
                known.cmdline = self._cmdline(known.proc)

    @staticmethod
    def _cmdline(proc: psutil.Process) -> str:
        try:
            return " ".join(proc.cmdline())
        except psutil.Error:
            return ""

    @staticmethod
    def _recorded_cmdline(proc: psutil.Process) -> str:
        """The command line as recorded: secrets masked (harness.recording.redact's rule), then cut to CMDLINE_CHARS."""
        try:
            return " ".join(redact_argv(proc.cmdline()))[:CMDLINE_CHARS]
        except psutil.Error:
            return ""

    def _descendants(self, roots: Iterable[int], children: dict[int, list[int]]) -> list[int]:
        """``roots`` and everything below them, not entering the sampler's own process."""
        found, stack = [], [pid for pid in roots if pid != self.own_pid]
        while stack:
            pid = stack.pop()
            found.append(pid)
            stack.extend(child for child in children.get(pid, ()) if child != self.own_pid)
        return found

    def _discover(self) -> list[tuple[int, str]]:
        children: dict[int, list[int]] = {}
        for pid, known in self._known.items():
            if known.ppid is not None:
                children.setdefault(known.ppid, []).append(pid)
        assign: dict[int, str] = {}
        if self.own_pid in self._known:
            assign[self.own_pid] = self.own_role
        for target in self.targets:
            if target.regex is not None:
                regex = target.regex
                roots = [
                    p
                    for p, k in self._known.items()
                    if k.cmdline
                    and SAMPLER_MARK not in k.cmdline
                    and AGENT_MARK not in k.cmdline
                    and regex.search(k.cmdline)
                ]
            else:
                roots = [target.pid] if target.pid in self._known else []
            pids = self._descendants(roots, children) if target.include_children else roots
            for pid in pids:
                if pid != self.own_pid:
                    assign.setdefault(pid, target.role)
        started = []
        for pid, role in assign.items():
            if pid not in self._followed and pid not in self._finished:
                followed = _Followed(self._known[pid].proc, role)
                self._followed[pid] = followed
                started.append((pid, role))
        return started

    def _read(self, pid: int, f: _Followed) -> tuple[Any, ...] | None:
        """One row (SAMPLE_SCHEMA order without ts_s), or None when the process has exited or is a zombie."""
        proc = f.proc
        try:
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    return None
                name = proc.name()
                if f.cmdline is None or name != f.name:  # first read, or an exec changed the program
                    f.cmdline = self._recorded_cmdline(proc)
                f.name = name
                times = proc.cpu_times()
                now_s = self._monotonic()
                cpu_s = times.user + times.system
                cpu_percent = None
                if f.cpu_s is not None and f.read_at_s is not None and now_s > f.read_at_s:
                    cpu_percent = max(0.0, (cpu_s - f.cpu_s) / (now_s - f.read_at_s) * 100.0)
                f.cpu_s, f.read_at_s = cpu_s, now_s
                memory = proc.memory_info()
                uss = _allowed(lambda: proc.memory_full_info().uss) if self.uss else None
                ctx = _allowed(proc.num_ctx_switches)
                io = _allowed(proc.io_counters)
                return (
                    f.role,
                    pid,
                    _allowed(proc.ppid),
                    name,
                    f.cmdline,
                    cpu_percent,
                    None if cpu_percent is None else cpu_percent / self.logical_cores,
                    memory.rss,
                    uss,
                    _allowed(proc.num_threads),
                    _allowed(proc.num_fds),
                    None if ctx is None else ctx.voluntary,
                    None if ctx is None else ctx.involuntary,
                    None if io is None else io.read_bytes,
                    None if io is None else io.write_bytes,
                )
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        except psutil.AccessDenied:  # not even stat is readable (hidepid): a row with what we know
            return (f.role, pid, None, f.name, f.cmdline, *([None] * 10))
