"""The sampler inside a Locust run: a sidecar process on the master, in-process sampling on each worker.

The master (or the only Locust process) starts ``python -m harness.sampling.sampler`` as a child process, following the
service's process tree (role "service") and its own tree (role "generator": Locust's ``--processes`` workers are
its children). It is a separate process so gevent's scheduling never delays a tick. A worker started on its own
(``locust --worker``, possibly on another machine) samples itself and ships the rows to the master inside
Locust's reports; the master writes them to ``worker_samples.arrows`` and merges them into ``samples.arrows``
when the run ends, onto the master's clock when the worker runs on another host
(``harness.sampling.worker_clock``: its rows carry its hostname in the ``host`` column). With ``--agents-bind`` the
master also runs the agents' hub (``HubProcess``: ``python -m harness.sampling.hub``), whose rows
``merge_agent_rows`` moves onto the master's clock and into the run's files when the run ends.

The sidecar dies with the process that started it (parent-death signal). A worker's own samples live in a
temporary directory it removes when it closes; one left by a killed worker is removed when the next worker on
this machine starts (``harness.target.reaper.sweep``: its owner is no longer running).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness.recording.recorder import ArrowStreamWriter, batch_to_bytes, read_stream
from harness.sampling.sampler import SAMPLE_SCHEMA, STREAM_SCHEMAS, ProcessTarget, Sampler
from harness.target.reaper import claim, sweep
from service.lifeline import preexec_die_with_parent

__all__ = ["HubProcess", "SamplerProcess", "WorkerSampling", "merge_agent_rows", "merge_worker_samples"]

logger = logging.getLogger(__name__)
SAMPLES_FILE = "samples.arrows"
WORKER_SAMPLES_FILE = "worker_samples.arrows"
WORKER_DIR_PREFIX = "featureload-worker-samples-"
AGENTS_FILE = "agents.json"  # written by harness.sampling.hub


class SamplerProcess:
    """``python -m harness.sampling.sampler`` following ``targets`` ({role: [pid, ...]}), writing into ``out_dir``."""

    def __init__(self, out_dir: Path, targets: dict[str, list[int]], interval_s: float, matches: dict[str, str]):
        argv = [sys.executable, "-m", "harness.sampling.sampler", "--out", str(out_dir), "--interval", str(interval_s)]
        for role, pids in targets.items():
            for pid in pids:
                argv += ["--role", role, "--pid", str(pid)]
        for role, pattern in matches.items():
            argv += ["--role", role, "--match", pattern]
        self.argv = argv
        self._log = open(out_dir / "sampler.log", "ab")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=preexec_die_with_parent(),  # a SIGKILLed Locust takes its sampler along
        )  # fmt: skip

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (the sampler flushes and rewrites sampler.json), then SIGKILL after ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("the sampler did not stop within %s s; killing it", timeout_s)
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()
        return self.process.returncode


class WorkerSampling:
    """A worker's own sampling: ticks driven by the caller, rows handed out once for shipping to the master."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        sweep(WORKER_DIR_PREFIX)
        self._dir = Path(tempfile.mkdtemp(prefix=WORKER_DIR_PREFIX))
        claim(self._dir)
        # The worker process is both the sampler and the generator: it is recorded once, as a generator.
        target = ProcessTarget("generator", pid=os.getpid(), include_children=False)
        self._sampler = Sampler(
            [target], self._dir, interval_s=interval_s, host=False, flush_interval_s=0.0, own_role="generator"
        )
        self._shipped = 0

    def tick(self) -> None:
        self._sampler.sample_once()

    def take_new_rows(self) -> bytes | None:
        """The rows sampled since the last call, serialized for a Locust report (None if there are none)."""
        path = self._dir / SAMPLES_FILE
        if not path.exists():
            return None
        try:
            table = read_stream(path)
        except ValueError:
            return None
        fresh = table.slice(self._shipped)
        if fresh.num_rows == 0:
            return None
        self._shipped += fresh.num_rows
        return batch_to_bytes(fresh.combine_chunks().to_batches()[0])

    def close(self) -> None:
        """Stop sampling and remove the temporary directory (idempotent)."""
        self._sampler.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def open_worker_samples(run_dir: Path) -> ArrowStreamWriter:
    """Where the master writes the rows workers ship."""
    return ArrowStreamWriter(run_dir / WORKER_SAMPLES_FILE, SAMPLE_SCHEMA)


def merge_worker_samples(run_dir: Path, offsets_s: Mapping[str, float] | None = None) -> int:
    """Append ``worker_samples.arrows`` to ``samples.arrows`` (written anew, then renamed); returns rows merged.
    Rows of a worker host in ``offsets_s`` (its clock minus this one's, seconds) move onto this clock."""
    extra_path = run_dir / WORKER_SAMPLES_FILE
    if not extra_path.exists():
        return 0
    extra = read_stream(extra_path)
    if extra.num_rows == 0:
        extra_path.unlink()
        return 0
    if offsets_s and "host" in extra.column_names:
        shift = np.array([offsets_s.get(h, 0.0) for h in extra.column("host").to_pylist()], dtype=np.float64)
        extra = extra.set_column(0, "ts_s", pa.array(extra.column("ts_s").to_numpy() - shift, pa.float64()))
    main_path = run_dir / SAMPLES_FILE
    tables = [read_stream(main_path)] if main_path.exists() else []
    merged = pa.concat_tables([*tables, extra.cast(SAMPLE_SCHEMA)]).sort_by("ts_s")
    temp = run_dir / f".{SAMPLES_FILE}.tmp"
    with pa.OSFile(str(temp), "wb") as sink, pa.ipc.new_stream(sink, SAMPLE_SCHEMA) as writer:
        writer.write_table(merged)
    os.replace(temp, main_path)
    extra_path.unlink()
    return extra.num_rows


def merge_agent_rows(run_dir: Path, since_s: float | None = None) -> list[dict[str, Any]]:
    """Put the agents' rows on the master's clock and append them to the run's samples/host/gpu files (each
    written anew, sorted by ts_s, then renamed); rows stamped before ``since_s`` (master clock) are left out.
    Returns agents.json's agents ([] without it). An agent without a clock estimate keeps its own stamps."""
    status_path = run_dir / AGENTS_FILE  # the hub's (harness.sampling.hub)
    if not status_path.exists():
        return []
    agents = json.loads(status_path.read_text(encoding="utf-8")).get("agents") or []
    offsets = {a["name"]: (a.get("clock_offset_ms") or 0.0) / 1000.0 for a in agents}
    for stream, schema in STREAM_SCHEMAS.items():
        extra_path = run_dir / f"agent_{stream}.arrows"
        if not extra_path.exists():
            continue
        extra = read_stream(extra_path).cast(schema)
        hosts = np.array(extra.column("host").to_pylist(), dtype=object)
        shift = np.array([offsets.get(h, 0.0) for h in hosts], dtype=np.float64)
        ts = extra.column("ts_s").to_numpy() - shift
        extra = extra.set_column(0, "ts_s", pa.array(ts, pa.float64()))
        if since_s is not None:
            extra = extra.filter(pa.array(ts >= since_s))
        main_path = run_dir / f"{stream}.arrows"
        tables = [_with_host(read_stream(main_path), schema)] if main_path.exists() else []
        merged = pa.concat_tables([*tables, extra]).sort_by("ts_s")
        temp = run_dir / f".{stream}.arrows.tmp"
        with pa.OSFile(str(temp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            writer.write_table(merged)
        os.replace(temp, main_path)
        extra_path.unlink()
    return agents


def _with_host(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``, a missing host column filled with "local" (a file from before the column)."""
    if "host" not in table.column_names:
        table = table.append_column("host", pa.array(["local"] * table.num_rows, pa.string()))
    return table.select(schema.names).cast(schema)


class HubProcess:
    """``python -m harness.sampling.hub`` for one run, writing into ``out_dir`` (log: hub.log); it inherits the
    token through the environment and dies with this process."""

    def __init__(self, out_dir: Path, bind: str) -> None:
        argv = [sys.executable, "-m", "harness.sampling.hub", "--bind", bind, "--out", str(out_dir)]
        self._log = open(out_dir / "hub.log", "ab")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                        preexec_fn=preexec_die_with_parent())  # fmt: skip

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (the hub finishes its files and agents.json), SIGKILL after ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("the agents' hub did not stop within %s s; killing it", timeout_s)
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()
        return self.process.returncode
