"""The sidecar sampler: the service's process tree, the load generators, the host and the GPU, into the run dir.

Files written into ``out_dir`` (Arrow IPC streams through ``harness.recording.recorder.ArrowStreamWriter``: readable
while the run goes on, a killed sampler loses at most the chunk it was writing)::

    samples.arrows         SAMPLE_SCHEMA: one row per followed process per tick, plus one scope="host" row
    host.arrows            HOST_SCHEMA: one row per tick (host=True)
    gpu.arrows             GPU_SCHEMA: one row per device per tick (only when a GPU backend is active)
    gpu_processes.arrows   GPU_PROCESS_SCHEMA: one row per (device, process) per tick (only with a GPU backend)
    sampler.json           settings, targets, GPU backend (or why none), counters; written at start, every
                           ``status_interval_s`` and at stop (atomically)

All rows of one tick share one ``ts_s`` (epoch seconds, read from ``clock`` at the tick's start). ``cpu_percent``
is percent of ONE core since the previous sample of that pid (user + system; can exceed 100; None on a pid's
first sample); the host row's ``cpu_percent`` is the machine busy percent times the logical cores, so it sums in
the same unit, its ``cpu_machine_percent`` the machine busy percent (0..100), its ``rss_bytes`` the host's used
memory (psutil's ``used``), its other process columns null. Every row's last column ``host`` names the machine
(``harness.sampling.readers.LOCAL_HOST``, "local", unless told otherwise; an agent's rows carry its name). A chunk
is written every ``flush_interval_s`` (and on the first tick, and at close).

CLI (``python -m harness.sampling.sampler --help``): each ``--pid``/``--match`` takes the role of the nearest ``--role``
before it (``service`` before any ``--role``), e.g. ``--role service --match uvicorn --role generator --pid 456``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

from harness.recording._columns import record_batch
from harness.recording.recorder import ArrowStreamWriter
from harness.sampling.args import parse_args
from harness.sampling.gpu import GpuBackend, NoGpu, detect_gpu
from harness.sampling.proc import CMDLINE_CHARS, ProcessTarget
from harness.sampling.readers import LOCAL_HOST, TickReader

__all__ = [
    "GPU_PROCESS_SCHEMA",
    "GPU_SCHEMA",
    "HOST_SCHEMA",
    "SAMPLE_SCHEMA",
    "STREAM_SCHEMAS",
    "ProcessTarget",
    "Sampler",
    "main",
]

logger = logging.getLogger("featureload.sampler")

SAMPLE_SCHEMA = pa.schema(
    [
        ("ts_s", pa.float64()),  # epoch seconds, the same for every row of one tick
        ("scope", pa.string()),  # the target's role, "sampler" (itself) or "host"
        ("pid", pa.int64()),
        ("ppid", pa.int64()),
        ("name", pa.string()),
        ("cmdline", pa.string()),  # first CMDLINE_CHARS characters
        ("cpu_percent", pa.float64()),  # percent of one core since this pid's previous sample
        ("cpu_machine_percent", pa.float64()),  # cpu_percent / logical cores
        ("rss_bytes", pa.int64()),
        ("uss_bytes", pa.int64()),
        ("threads", pa.int32()),
        ("fds", pa.int32()),
        ("ctx_voluntary", pa.int64()),  # cumulative
        ("ctx_involuntary", pa.int64()),
        ("read_bytes", pa.int64()),  # cumulative, io_counters
        ("write_bytes", pa.int64()),
        ("host", pa.string()),  # whose machine: "local" (LOCAL_HOST) or an agent's name; older files lack it
    ]
)
HOST_SCHEMA = pa.schema(
    [
        ("ts_s", pa.float64()),
        ("cpu_percent", pa.float64()),  # machine busy percent, 0..100
        ("cpu_per_core", pa.list_(pa.float64())),
        ("mem_total_bytes", pa.int64()),
        ("mem_used_bytes", pa.int64()),
        ("mem_available_bytes", pa.int64()),
        ("swap_used_bytes", pa.int64()),
        ("load1", pa.float64()),
        ("load5", pa.float64()),
        ("load15", pa.float64()),
        ("disk_read_bytes", pa.int64()),  # cumulative counters from here on
        ("disk_write_bytes", pa.int64()),
        ("net_sent_bytes", pa.int64()),
        ("net_recv_bytes", pa.int64()),
        ("host", pa.string()),
    ]
)
GPU_SCHEMA = pa.schema(
    [
        ("ts_s", pa.float64()),
        ("index", pa.int32()),
        ("name", pa.string()),
        ("uuid", pa.string()),
        ("util_percent", pa.float64()),
        ("mem_used_bytes", pa.int64()),
        ("mem_total_bytes", pa.int64()),
        ("temperature_c", pa.float64()),
        ("power_w", pa.float64()),
        ("host", pa.string()),
    ]
)
GPU_PROCESS_SCHEMA = pa.schema(
    [
        ("ts_s", pa.float64()),
        ("index", pa.int32()),
        ("pid", pa.int64()),
        ("used_memory_bytes", pa.int64()),
        ("host", pa.string()),
    ]
)
# Each stream's schema, by the name of its file (<name>.arrows) and of the TickReader's rows
STREAM_SCHEMAS = {"samples": SAMPLE_SCHEMA, "host": HOST_SCHEMA, "gpu": GPU_SCHEMA, "gpu_processes": GPU_PROCESS_SCHEMA}
RESCAN_S = 30.0  # how often unfollowed processes' command lines are re-read for --match (a late exec; ~30 us each)


class _Table:
    """Rows waiting for the next chunk of one stream."""

    def __init__(self, writer: ArrowStreamWriter) -> None:
        self.writer = writer
        self.rows: list[tuple[Any, ...]] = []

    def flush(self) -> None:
        if self.rows:
            rows, self.rows = self.rows, []
            self.writer.write(record_batch(rows, self.writer.schema))


def _iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat()


class Sampler:
    """Samples ``targets`` (plus itself as "sampler", the host and ``gpu``) into ``out_dir`` every ``interval_s``.

    ``gpu`` is the backend to read (``detect_gpu()`` finds one; None means ``NoGpu``); the sampler closes it.
    ``clock`` gives epoch seconds for ``ts_s``; ``uss`` adds USS (slower: reads smaps); ``host`` adds the host
    row and host.arrows; ``host_name`` fills every row's ``host`` column; ``own_role`` is the scope of the
    sampler's own process ("generator" when a Locust worker samples itself in-process). Creates ``out_dir`` and the
    files at once. ``sample_once``, ``run`` and ``close`` may be called from different threads.
    """

    def __init__(
        self,
        targets: Sequence[ProcessTarget],
        out_dir: Path,
        interval_s: float = 1.0,
        gpu: GpuBackend | None = None,
        clock: Callable[[], float] = time.time,
        uss: bool = False,
        host: bool = True,
        *,
        flush_interval_s: float = 1.0,
        status_interval_s: float = 10.0,
        own_role: str = "sampler",
        host_name: str = LOCAL_HOST,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0 seconds, got {interval_s!r}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.interval_s = float(interval_s)
        self.gpu = gpu if gpu is not None else NoGpu("no GPU backend given to the sampler")
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        self._status_interval_s = status_interval_s
        self._lock = threading.Lock()
        self._reader = TickReader(
            targets,
            self.gpu,
            host=host,
            uss=uss,
            own_role=own_role,
            rescan_every_ticks=max(1, round(RESCAN_S / interval_s)),
            host_name=host_name,
        )
        self._tracker = self._reader.tracker
        self._host = self._reader.host
        self._gpu_devices = self._reader.gpu_devices
        self._tables = {
            name: _Table(ArrowStreamWriter(self.out_dir / f"{name}.arrows", STREAM_SCHEMAS[name]))
            for name in self._reader.streams
        }
        self.ticks = 0
        self.ticks_missed = 0
        self.sampler_cpu_s = 0.0
        self.processes_seen: dict[int, dict[str, Any]] = {}
        self._started_at_s = clock()
        self._stopped_at_s: float | None = None
        self._last_flush_s: float | None = None
        self._last_status_s = self._started_at_s
        self._closed = False
        self._write_status()

    @property
    def rows(self) -> int:
        """Rows in samples.arrows so far, buffered ones included."""
        table = self._tables["samples"]
        return table.writer.rows + len(table.rows)

    def sample_once(self) -> None:
        """One tick: every followed process, the host and the GPU at one ``ts_s``. Raises ValueError once closed."""
        with self._lock:
            if self._closed:
                raise ValueError(f"the sampler writing {self.out_dir} is closed")
            cpu_start_s = time.thread_time()
            ts_s = self._clock()
            self._tick(ts_s)
            self.ticks += 1
            if self._last_flush_s is None or ts_s - self._last_flush_s >= self._flush_interval_s:
                self._flush(ts_s)
            if ts_s - self._last_status_s >= self._status_interval_s:
                self._last_status_s = ts_s
                self._write_status()
            self.sampler_cpu_s += time.thread_time() - cpu_start_s

    def _tick(self, ts_s: float) -> None:
        found, rows = self._reader.read(ts_s)
        for pid, role in found.started:
            self.processes_seen[pid] = {
                "name": None, "role": role, "first_ts_s": ts_s, "last_ts_s": ts_s, "exited": False,
            }  # fmt: skip
        for pid in found.exited:
            if pid in self.processes_seen:
                self.processes_seen[pid]["exited"] = True
        for row in rows["samples"]:
            if (seen := self.processes_seen.get(row[2])) is not None and row[1] != "host":
                seen["last_ts_s"], seen["name"] = ts_s, row[4]
        for name, new_rows in rows.items():
            self._tables[name].rows.extend(new_rows)

    def _flush(self, ts_s: float) -> None:
        self._last_flush_s = ts_s
        for table in self._tables.values():
            table.flush()

    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        """Tick at start + k * interval_s until ``stop`` is set or ``duration_s`` seconds have passed (ticks
        start only before that). A tick that starts late does not cause a burst: the missed ticks are skipped
        (counted in sampler.json as ticks_missed). Does not close the sampler."""
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be > 0 seconds (or None: until stop is set), got {duration_s!r}")
        start_s = time.monotonic()
        # ticks that start before duration_s (1 ns slack so that 1.0 s / 0.1 s is 10 ticks, not 11)
        limit = None
        if duration_s is not None and math.isfinite(duration_s):
            limit = math.ceil(duration_s / self.interval_s - 1e-9)
        k = 0
        while not stop.is_set() and not self._closed and (limit is None or k < limit):
            try:
                self.sample_once()
            except ValueError:
                if self._closed:  # close() from another thread ends the loop
                    break
                raise
            k += 1
            now_s = time.monotonic()
            behind = int((now_s - start_s) / self.interval_s) + 1 - k
            if limit is not None:
                behind = min(behind, limit - k)
            if behind > 0:
                self.ticks_missed += behind
                k += behind
            if limit is not None and k >= limit:
                break
            stop.wait(max(0.0, start_s + k * self.interval_s - time.monotonic()))

    def close(self) -> None:
        """Write the last chunks, finish the streams, close the GPU backend, rewrite sampler.json (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            cpu_start_s = time.thread_time()
            self._flush(self._clock())
            for table in self._tables.values():
                table.writer.close()
            self._reader.gpu_call("close", lambda: [self.gpu.close()])
            self.sampler_cpu_s += time.thread_time() - cpu_start_s
            self._stopped_at_s = self._clock()
            self._write_status()

    def status(self) -> dict[str, Any]:
        """The content of sampler.json."""
        try:
            own = psutil.Process().cpu_times()
            process_cpu_s: float | None = own.user + own.system
        except psutil.Error:
            process_cpu_s = None
        return {
            "interval_s": self.interval_s,
            "started_at": _iso(self._started_at_s),
            "stopped_at": None if self._stopped_at_s is None else _iso(self._stopped_at_s),
            "hostname": socket.gethostname(),
            "pid": self._tracker.own_pid,
            "logical_cores": self._tracker.logical_cores,
            "uss": self._tracker.uss,
            "host": self._host is not None,
            "targets": [t.describe() for t in self._tracker.targets],
            "gpu": {"backend": self.gpu.name, "devices": len(self._gpu_devices), "reason": self.gpu.reason},
            "ticks": self.ticks,
            "ticks_missed": self.ticks_missed,
            "rows": self.rows,
            "files": {name: table.writer.path.name for name, table in self._tables.items()},
            "processes_seen": {str(pid): seen for pid, seen in self.processes_seen.items()},
            "sampler_cpu_s": round(self.sampler_cpu_s, 6),
            "process_cpu_s": process_cpu_s,
            "cpu_rule": (
                "sampler_cpu_s: thread CPU seconds spent in ticks and writes; process_cpu_s: user+system CPU of "
                "the sampler's whole process (start-up included); cpu_percent: percent of one core since the "
                f"pid's previous sample, None on its first; cmdline: first {CMDLINE_CHARS} characters"
            ),
        }

    def _write_status(self) -> None:
        target = self.out_dir / "sampler.json"
        temp = target.with_name(".sampler.json.tmp")
        temp.write_text(json.dumps(self.status(), indent=2) + "\n", encoding="utf-8")
        os.replace(temp, target)


def main(argv: Sequence[str] | None = None) -> int:
    """The sidecar: sample until SIGTERM/SIGINT or --duration, then flush and rewrite sampler.json; returns 0."""
    args, targets = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    # The loop runs in a thread; the main thread only joins it, so the handler's stop.set() never waits on a
    # lock the interrupted main thread holds. A signal during start-up just makes the run end at once.
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _sample(args, targets, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _sample(args: argparse.Namespace, targets: list[ProcessTarget], stop: threading.Event) -> int:
    gpu = NoGpu("disabled by --no-gpu") if args.no_gpu else detect_gpu()
    sampler = Sampler(targets, args.out, interval_s=args.interval, gpu=gpu, uss=args.uss)
    failure: list[BaseException] = []

    def loop() -> None:
        try:
            sampler.run(stop, args.duration)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=loop, name="sampler", daemon=True)
    logger.info("sampling %s every %gs into %s (gpu: %s)", [t.describe() for t in targets], args.interval,
                args.out, gpu.reason or gpu.name)  # fmt: skip
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
    sampler.close()
    if failure:
        raise failure[0]
    logger.info("stopped after %d ticks, %d rows", sampler.ticks, sampler.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
