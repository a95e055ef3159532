"""The hub: where agents (``harness.sampling.agent``) stream their rows, beside the run directory.

``python -m harness.sampling.hub --bind HOST:PORT --out DIR`` listens on a ZeroMQ ROUTER socket (messages:
``harness.sampling.wire``). The Locust master given ``--agents-bind`` runs it as a child process per run
(``harness.sampling.monitoring.HubProcess``, dying with its parent), so that ingestion never competes with gevent's
scheduling; it is also runnable on its own. The token (``FEATURELOAD_AGENT_TOKEN``) comes from the environment
only, is required when the bind address is not loopback, and is never written.

Files written into ``out_dir``::

    agent_samples.arrows, agent_host.arrows, agent_gpu.arrows, agent_gpu_processes.arrows
                  the agents' rows as received: ``ts_s`` on each AGENT's clock, ``host`` = the agent's name
    agents.json   one entry per agent (AGENT_FIELDS), rewritten every STATUS_S and at stop (atomically)

``harness.sampling.monitoring.merge_agent_rows(run_dir)`` then puts the rows on the hub's clock (``ts_s - offset``)
and appends them to samples.arrows, host.arrows and gpu.arrows (and gpu_processes.arrows), removing the
agent_*.arrows files.

Per agent the hub keeps: the clock estimate (``harness.sampling.clock``: pings every ``ping_s``), the highest
batch seq written (a resent batch is acknowledged, not written twice), and when it was lost: no message for
``lost_after`` of its heartbeats opens a window {from: its last message}; its next message closes it {to}. A
window still open at stop has ``to`` None (lost until the end).
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import zmq

from harness.recording.recorder import ArrowStreamWriter, batch_from_bytes, batch_to_bytes
from harness.sampling.clock import ClockEstimator
from harness.sampling.monitoring import AGENTS_FILE
from harness.sampling.sampler import STREAM_SCHEMAS as SCHEMAS
from harness.sampling.wire import TOKEN_ENV, decode, encode, parse_address, token_refusal

__all__ = ["AGENTS_FILE", "Hub", "main"]

logger = logging.getLogger("featureload.hub")

STATUS_S = 2.0
PING_BURST = 8  # pings right after a hello: an offset estimate within a second of the agent's arrival
MAX_AGENTS = 1000  # names remembered: bounded whatever connects
AGENT_FIELDS = ("name", "host", "clock_offset_ms", "clock_uncertainty_ms", "rows", "first_seen", "last_seen", "lost")


def _iso(ts_s: float | None) -> str | None:
    return None if ts_s is None else datetime.fromtimestamp(ts_s, UTC).isoformat()


@dataclass
class _Agent:
    name: str
    identity: bytes
    first_seen_s: float
    last_seen_s: float
    host: str | None = None
    pid: int | None = None
    instance: str = ""  # the agent process's random id: a restart is a new instance
    heartbeat_s: float = 1.0
    interval_s: float | None = None
    last_seq: int = -1
    rows: int = 0
    batches: int = 0
    dropped_batches: int = 0
    backlog: int = 0
    clock: ClockEstimator = field(default_factory=ClockEstimator)
    lost: list[dict[str, float | None]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        estimate = self.clock.estimate()
        return {
            "name": self.name, "host": self.host, "pid": self.pid, "interval_s": self.interval_s,
            "clock_offset_ms": None if estimate is None else round(estimate.offset_s * 1000, 3),
            "clock_uncertainty_ms": None if estimate is None else round(estimate.uncertainty_s * 1000, 3),
            "clock_exchanges": 0 if estimate is None else estimate.samples,
            "rows": self.rows, "batches": self.batches, "dropped_batches": self.dropped_batches,
            "first_seen": _iso(self.first_seen_s), "last_seen": _iso(self.last_seen_s),
            "first_seen_s": self.first_seen_s, "last_seen_s": self.last_seen_s,
            "lost": [{"from": _iso(w["from_s"]), "to": _iso(w["to_s"]), **w} for w in self.lost],
        }  # fmt: skip


class Hub:
    """Receives agents' batches on ``bind`` ("host:port") and writes them into ``out_dir``.

    ``token`` "" accepts any message (loopback only: ``token_refusal`` guards the CLI and Locust); ``clock`` is
    the master's clock (epoch seconds). ``run(stop)`` serves until ``stop`` is set; ``close()`` finishes the files.
    """

    def __init__(
        self, bind: str, out_dir: Path, token: str = "", *, lost_after: int = 3, ping_s: float = 1.0,
        clock: Callable[[], float] = time.time, context: zmq.Context | None = None,
    ) -> None:  # fmt: skip
        host, port = parse_address(bind, "--agents-bind")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.lost_after = lost_after
        self.ping_s = ping_s
        self.agents: dict[str, _Agent] = {}
        self.rejected = 0  # messages dropped for a wrong token
        self.malformed = 0
        self.ingest_cpu_s = 0.0
        self._token = token.encode()
        self._clock = clock
        self._started_s = clock()
        self._by_identity: dict[bytes, str] = {}
        self._writers: dict[str, ArrowStreamWriter] = {}
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # an agent's fresh connection takes over its identity
        address = f"[{host}]" if ":" in host else host
        self._socket.bind(f"tcp://{'*' if host == '0.0.0.0' else address}:{port}")
        self._closed = False
        self._warm_up()
        self._write_status()

    @staticmethod
    def _warm_up() -> None:
        """Decode one batch of each stream now: the first decode loads pyarrow's IPC and cast code (a quarter
        of a second), which would otherwise delay the pongs queued behind an agent's first batch."""
        for schema in SCHEMAS.values():
            batch_from_bytes(batch_to_bytes(pa.RecordBatch.from_pylist([], schema=schema))).cast(schema)

    # ---- messages ---------------------------------------------------------------------------------------------

    def _reply(self, identity: bytes, header: dict[str, Any]) -> None:
        with contextlib.suppress(zmq.Again):  # the agent is not reading: it will reconnect and say hello again
            self._socket.send_multipart([identity, *encode(header)], flags=zmq.NOBLOCK)

    def handle(self, identity: bytes, frames: list[bytes], received_s: float | None = None) -> None:
        """One message from ``identity``, received at ``received_s`` (the hub's clock; default now): checked
        (token, format), then acted on."""
        decoded = decode(frames)
        if decoded is None or not isinstance(decoded[0].get("name"), str):
            self.malformed += 1
            return
        header, payload = decoded
        token = header.get("token")
        if self._token and not (isinstance(token, str) and hmac.compare_digest(token.encode(), self._token)):
            if self.rejected == 0:
                logger.warning("dropping messages with a wrong or missing agent token (from agent %r)", header["name"])
            self.rejected += 1
            return
        now = self._clock() if received_s is None else received_s
        kind, name = header["kind"], header["name"]
        if kind == "hello":
            agent = self._hello(identity, name, header, now)
            if agent is None:
                return
        else:
            known = self._by_identity.get(identity)
            agent = self.agents.get(name) if known == name else None
            if agent is None:
                self._reply(identity, {"kind": "who"})
                return
        self._seen(agent, now)
        if kind == "batch":
            self._batch(agent, header, payload)
        elif kind == "pong":
            t0, t1, t2 = header.get("t0"), header.get("t1"), header.get("t2")
            if all(isinstance(t, int | float) for t in (t0, t1, t2)):
                agent.clock.add(float(t0), float(t1), float(t2), now)  # type: ignore[arg-type]
        elif kind == "beat":
            agent.backlog = int(header.get("backlog") or 0)
            agent.dropped_batches = int(header.get("dropped_batches") or 0)

    def _hello(self, identity: bytes, name: str, header: dict[str, Any], now: float) -> _Agent | None:
        """Register (or re-register) the agent ``name``; None when another running agent holds the name."""
        agent = self.agents.get(name)
        instance = str(header.get("instance") or "")[:64]
        if agent is not None and agent.instance != instance:
            if now - agent.last_seen_s <= self.lost_after * agent.heartbeat_s:  # two agents, one name
                reason = (f"--name {name} is taken by a running agent (host {agent.host}, pid {agent.pid}): give "
                          "each agent its own --name")  # fmt: skip
                self._reply(identity, {"kind": "refused", "reason": reason})
                logger.warning("refused a second agent named %s (host %s, pid %s)", name, header.get("host"),
                               header.get("pid"))  # fmt: skip
                return None
            agent.last_seq = -1  # a restarted agent numbers its batches from 0 again
        if agent is None:
            if len(self.agents) >= MAX_AGENTS:
                raise ValueError(f"more than {MAX_AGENTS} agents")
            agent = self.agents[name] = _Agent(name, identity, now, now)
            logger.info("agent %s connected (host %s)", name, header.get("host"))
        self._by_identity.pop(agent.identity, None)
        agent.identity, agent.instance = identity, instance
        self._by_identity[identity] = name
        agent.host = str(header.get("host") or "")[:255] or None
        agent.pid = header.get("pid") if isinstance(header.get("pid"), int) else None
        if isinstance(header.get("heartbeat_s"), int | float) and header["heartbeat_s"] > 0:
            agent.heartbeat_s = float(header["heartbeat_s"])
        if isinstance(header.get("interval_s"), int | float):
            agent.interval_s = float(header["interval_s"])
        self._reply(identity, {"kind": "welcome", "last_seq": agent.last_seq})
        for _ in range(PING_BURST):
            self._reply(identity, {"kind": "ping", "t0": self._clock()})
        return agent

    def _seen(self, agent: _Agent, now: float) -> None:
        agent.last_seen_s = now
        if agent.lost and agent.lost[-1]["to_s"] is None:
            agent.lost[-1]["to_s"] = now
            logger.warning("agent %s is back after %.1f s", agent.name, now - (agent.lost[-1]["from_s"] or now))

    def _batch(self, agent: _Agent, header: dict[str, Any], payload: list[bytes]) -> None:
        seq, streams = header.get("seq"), header.get("streams")
        if not isinstance(seq, int) or not isinstance(streams, list) or len(streams) != len(payload):
            self.malformed += 1
            return
        if seq > agent.last_seq:  # a resent batch already written is only acknowledged again
            for stream, frame in zip(streams, payload, strict=True):
                schema = SCHEMAS.get(stream)
                if schema is None:
                    continue
                table = batch_from_bytes(frame)
                if not table.schema.equals(schema):
                    table = table.cast(schema)
                # the name the agent said hello with, whatever its rows claim
                table = table.set_column(table.schema.get_field_index("host"), "host",
                                         pa.repeat(pa.scalar(agent.name, pa.string()), table.num_rows))  # fmt: skip
                writer = self._writers.get(stream)
                if writer is None:
                    writer = self._writers[stream] = ArrowStreamWriter(self.out_dir / f"agent_{stream}.arrows", schema)
                for batch in table.to_batches():
                    writer.write(batch)
                if stream == "samples":
                    agent.rows += table.num_rows
            agent.last_seq = seq
            agent.batches += 1
        self._reply(agent.identity, {"kind": "ack", "seq": agent.last_seq})

    # ---- the loop ---------------------------------------------------------------------------------------------

    def _check_lost(self, now: float) -> None:
        for agent in self.agents.values():
            open_window = agent.lost and agent.lost[-1]["to_s"] is None
            if not open_window and now - agent.last_seen_s > self.lost_after * agent.heartbeat_s:
                agent.lost.append({"from_s": agent.last_seen_s, "to_s": None})
                logger.warning("agent %s lost: no message for %.1f s", agent.name, now - agent.last_seen_s)

    def run(self, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        next_ping = next_status = time.monotonic()
        while not stop.is_set():
            if dict(poller.poll(timeout=100)):
                started = time.thread_time()
                for _ in range(1000):  # then the pings and checks get their turn
                    try:
                        identity, *frames = self._socket.recv_multipart(flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:  # a pong's t3 is its arrival here, not the end of the work queued before it
                        self.handle(identity, frames, self._clock())
                    except (ValueError, TypeError, KeyError, pa.ArrowException) as exc:  # one bad message
                        self.malformed += 1
                        logger.warning("dropped a malformed agent message: %r", exc)
                self.ingest_cpu_s += time.thread_time() - started
            now_m = time.monotonic()
            if now_m >= next_ping:
                next_ping = now_m + self.ping_s
                for agent in self.agents.values():
                    self._reply(agent.identity, {"kind": "ping", "t0": self._clock()})
                self._check_lost(self._clock())
            if now_m >= next_status:
                next_status = now_m + STATUS_S
                self._write_status()

    def status(self) -> dict[str, Any]:
        """The content of agents.json."""
        return {
            "started_at": _iso(self._started_s), "pid": os.getpid(),
            "agents": [agent.describe() for agent in self.agents.values()],
            "messages_rejected_token": self.rejected, "messages_malformed": self.malformed,
            "ingest_cpu_s": round(self.ingest_cpu_s, 6),
            "clock_rule": "clock_offset_ms = agent clock minus master clock: median offset of the last 64 ping/pong "
                          "exchanges whose round trip is at most twice the quickest + 1 ms; uncertainty = half the "
                          "slowest round trip among those",
        }  # fmt: skip

    def _write_status(self) -> None:
        target = self.out_dir / AGENTS_FILE
        temp = target.with_name(f".{AGENTS_FILE}.tmp")
        temp.write_text(json.dumps(self.status(), indent=2) + "\n", encoding="utf-8")
        os.replace(temp, target)

    def close(self) -> None:
        """Finish the files and rewrite agents.json (lost windows still open stay open: lost to the end)."""
        if self._closed:
            return
        self._closed = True
        self._check_lost(self._clock())
        self._socket.close(linger=0)
        for writer in self._writers.values():
            writer.close()
        self._write_status()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.sampling.hub",
        description="Receive agents' samples into a directory until SIGTERM/SIGINT.",
    )
    parser.add_argument("--bind", required=True, metavar="HOST:PORT", help="where agents connect")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into (created if missing)")
    parser.add_argument("--lost-after", type=int, default=3, help="missed heartbeats before an agent is lost")
    return parser


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 2 with one line for a refused bind (no token beyond loopback, bad address)."""
    parser = _parser()
    args = parser.parse_args(argv)
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "")
    try:
        refusal = token_refusal(args.bind, token, "--bind")
    except ValueError as exc:
        parser.error(str(exc))
    if refusal:
        parser.error(refusal)
    if args.lost_after < 1:
        parser.error(f"--lost-after {args.lost_after} is invalid: use 1 or more heartbeats")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        hub = Hub(args.bind, args.out, token, lost_after=args.lost_after)
    except zmq.ZMQError as exc:
        print(f"hub: cannot listen on --bind {args.bind}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logger.info("listening for agents on %s, writing into %s", args.bind, args.out)
    try:
        hub.run(stop)
    finally:
        hub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
