"""An agent per host: samples what the sidecar samples (process trees, the host, the GPU) and streams it to the hub.

``python -m harness.sampling.agent --master HOST:PORT [--name NAME] [--role R --pid P | --match REGEX ...]
[--interval S] [--no-gpu]``: the hub listens in the Locust process that writes the run directory
(``--agents-bind``). The secret ``FEATURELOAD_AGENT_TOKEN`` is sent with every message (read from the
environment only: a flag would show in ``ps``); the hub drops messages whose token is wrong.

Rows are read by ``harness.sampling.readers.TickReader`` (the sidecar's readers) and stamped with this machine's
clock and ``--name`` in the ``host`` column; the hub estimates this clock's offset from ping/pong round trips
and puts the rows on its own clock. Every ``send_interval_s`` (the larger of 1 s and --interval) the ticks so far
go as one batch. Batches wait in a backlog until the hub acknowledges them: at most ``--backlog`` batches (the
oldest are dropped, and counted, beyond that), so a master that is away, restarting or not yet started loses
nothing shorter than the backlog. When the hub has been silent for ``--silence`` seconds the agent drops the
connection and reconnects with a fresh socket (stale queued messages die with the old one), says hello again,
and resends what the hub does not hold.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from harness.recording._columns import record_batch
from harness.recording.recorder import batch_to_bytes
from harness.sampling.args import add_target_arguments, checked_targets
from harness.sampling.gpu import NoGpu, detect_gpu
from harness.sampling.proc import ProcessTarget
from harness.sampling.readers import LOCAL_HOST, TickReader
from harness.sampling.sampler import STREAM_SCHEMAS as SCHEMAS
from harness.sampling.wire import TOKEN_ENV, decode, encode, parse_address

__all__ = ["Agent", "main"]

logger = logging.getLogger("featureload.agent")

DEFAULT_BACKLOG = 600  # batches (one per second by default: ten minutes of a master away)
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Agent:
    """Samples ``reader`` every ``interval_s`` and streams batches to the hub at ``master`` ("host:port").

    ``clock`` stamps rows and pongs (epoch seconds; the system edge tests may shift). ``run(stop)`` loops until
    ``stop`` is set; ``close()`` closes the socket and the GPU backend.
    """

    def __init__(
        self, master: str, name: str, reader: TickReader, *, token: str = "", interval_s: float = 1.0,
        heartbeat_s: float = 1.0, silence_s: float = 3.0, backlog: int = DEFAULT_BACKLOG,
        clock: Callable[[], float] = time.time, context: zmq.Context | None = None,
    ) -> None:  # fmt: skip
        host, port = parse_address(master, "--master")
        self.endpoint = f"tcp://{host}:{port}" if ":" not in host else f"tcp://[{host}]:{port}"
        self.name = name
        self.reader = reader
        self.interval_s = interval_s
        self.send_interval_s = max(1.0, interval_s)
        self.heartbeat_s = heartbeat_s
        self.silence_s = silence_s
        self.backlog: deque[tuple[int, list[str], list[bytes], int]] = deque(maxlen=backlog)
        self.dropped_batches = 0
        self.reconnects = 0
        self.refused: str | None = None  # why the hub refused this agent (it then stops)
        self.instance = uuid.uuid4().hex  # a restarted agent is a new instance: the hub resets its batch numbers
        self.sent_batches = 0
        self._token = token
        self._clock = clock
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._welcomed = False
        self._heard_s = time.monotonic()
        self._seq = -1
        self._pending: dict[str, list[tuple[Any, ...]]] = {}

    # ---- the connection ---------------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)  # what it still queued is stale: the backlog resends it
            self.reconnects += 1
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 1000)
        sock.setsockopt(zmq.RECONNECT_IVL, 200)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.connect(self.endpoint)
        self._socket, self._welcomed, self._heard_s = sock, False, time.monotonic()
        self._hello()

    def _send(self, header: dict[str, Any], *frames: bytes) -> bool:
        assert self._socket is not None
        try:
            self._socket.send_multipart(encode({**header, "token": self._token, "name": self.name}, *frames),
                                        flags=zmq.NOBLOCK)  # fmt: skip
        except zmq.Again:  # the hub is away and the queue full: the backlog keeps the batches
            return False
        return True

    def _hello(self) -> None:
        self._send({"kind": "hello", "host": socket.gethostname(), "pid": os.getpid(), "instance": self.instance,
                    "interval_s": self.interval_s,
                    "heartbeat_s": self.heartbeat_s, "targets": [t.describe() for t in self.reader.tracker.targets],
                    "gpu": self.reader.gpu.name})  # fmt: skip

    def _send_batch(self, entry: tuple[int, list[str], list[bytes], int]) -> None:
        seq, streams, frames, rows = entry
        if self._send({"kind": "batch", "seq": seq, "streams": streams, "rows": rows}, *frames):
            self.sent_batches += 1

    def _on_message(self, frames: list[bytes], received_s: float) -> None:
        decoded = decode(frames)
        if decoded is None:
            return
        header, _ = decoded
        self._heard_s = time.monotonic()
        kind = header["kind"]
        if kind == "ping":  # t1 is when the ping arrived, not when its turn came
            self._send({"kind": "pong", "t0": header.get("t0"), "t1": received_s, "t2": self._clock()})
        elif kind == "ack":
            self._forget(int(header.get("seq", -1)))
        elif kind == "welcome" and not self._welcomed:  # one resend per hello answered, not per repeated hello
            self._welcomed = True
            self._forget(int(header.get("last_seq", -1)))
            for entry in list(self.backlog):
                self._send_batch(entry)
        elif kind == "refused":  # another agent runs under this name: stop, saying why
            self.refused = str(header.get("reason") or "refused by the hub")[:500]
        elif kind == "who":
            self._welcomed = False
            self._hello()

    def _forget(self, seq: int) -> None:
        while self.backlog and self.backlog[0][0] <= seq:
            self.backlog.popleft()

    # ---- sampling ---------------------------------------------------------------------------------------------

    def _sample(self) -> None:
        _, rows = self.reader.read(self._clock())
        for stream, new in rows.items():
            self._pending.setdefault(stream, []).extend(new)

    def _batch(self) -> None:
        """The ticks so far as one batch into the backlog (the oldest one dropped when it is full), sent at once
        when the hub is there."""
        pending, self._pending = self._pending, {}
        streams = [s for s, rows in pending.items() if rows]
        if not streams:
            return
        self._seq += 1
        frames = [batch_to_bytes(record_batch(pending[s], SCHEMAS[s])) for s in streams]
        entry = (self._seq, streams, frames, len(pending.get("samples", ())))
        if len(self.backlog) == self.backlog.maxlen:
            self.dropped_batches += 1
        self.backlog.append(entry)
        if self._welcomed:
            self._send_batch(entry)

    def run(self, stop: threading.Event) -> None:
        """Sample, batch, answer the hub and keep the connection until ``stop`` is set."""
        self._connect()
        poller = zmq.Poller()
        start = time.monotonic()
        next_tick = next_batch = start
        next_batch += self.send_interval_s
        next_beat = start + self.heartbeat_s
        while not stop.is_set() and self.refused is None:
            now = time.monotonic()
            if now >= next_tick:
                self._sample()
                next_tick += self.interval_s * max(1, int((now - next_tick) / self.interval_s) + 1)  # no bursts
            if now >= next_batch:
                self._batch()
                next_batch += self.send_interval_s
            if now >= next_beat:
                next_beat = now + self.heartbeat_s
                if now - self._heard_s > self.silence_s:
                    logger.warning("the hub at %s has been silent for %.1f s; reconnecting (%d batches kept)",
                                   self.endpoint, now - self._heard_s, len(self.backlog))  # fmt: skip
                    self._connect()
                elif self._welcomed:
                    self._send({"kind": "beat", "backlog": len(self.backlog), "dropped_batches": self.dropped_batches})
                else:
                    self._hello()
            assert self._socket is not None
            poller.register(self._socket, zmq.POLLIN)
            timeout_ms = max(0.0, min(next_tick, next_batch, next_beat) - time.monotonic()) * 1000
            events = dict(poller.poll(timeout=min(timeout_ms, 200)))  # 200 ms: stop is noticed soon
            poller.unregister(self._socket)
            if events:
                while True:
                    try:
                        frames = self._socket.recv_multipart(flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._on_message(frames, self._clock())
        self._batch()
        if self._welcomed:  # the last ticks, best effort
            for entry in list(self.backlog):
                self._send_batch(entry)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=500)  # half a second for the last batch to leave
            self._socket = None
        self.reader.gpu_call("close", lambda: [self.reader.gpu.close()])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.sampling.agent",
        description="Sample this host's processes, the host and its GPU, and stream them to the Locust master "
        f"started with --agents-bind. The token comes from {TOKEN_ENV} (required when the master listens beyond "
        "loopback).",
        epilog="Each --pid/--match takes the role of the nearest --role before it ('service' before any --role). "
        "Without any, only the host (and the agent itself) is sampled.",
    )
    parser.add_argument("--master", required=True, metavar="HOST:PORT", help="the hub: the master's --agents-bind")
    parser.add_argument("--name", default=socket.gethostname(), help="this host's name in the run (default: hostname)")
    add_target_arguments(parser)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks (default: 1.0)")
    parser.add_argument("--no-gpu", action="store_true", help="do not look for a GPU")
    parser.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG,
                        help=f"batches kept while the master is away (default: {DEFAULT_BACKLOG})")  # fmt: skip
    parser.add_argument("--heartbeat", type=float, default=1.0, help="seconds between heartbeats (default: 1.0)")
    parser.add_argument(
        "--silence",
        type=float,
        default=3.0,
        help="reconnect after this many seconds without a word from the hub (default: 3.0)",
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[ProcessTarget]]:
    """Parsed arguments and targets; exits with status 2 and one line naming the field for bad ones."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        parse_address(args.master, "--master")
    except ValueError as exc:
        parser.error(str(exc))
    if not _NAME_RE.fullmatch(args.name) or args.name == LOCAL_HOST:
        parser.error(f"--name {args.name!r} is invalid: use [A-Za-z0-9_.-], 1-64 chars, not {LOCAL_HOST!r}")
    if not 0.01 <= args.interval <= 3600:
        parser.error(f"--interval {args.interval:g} is out of range: use seconds between 0.01 and 3600")
    if not 1 <= args.backlog <= 1_000_000:
        parser.error(f"--backlog {args.backlog} is out of range: use 1 to 1000000 batches")
    if not 0.05 <= args.heartbeat <= 60:
        parser.error(f"--heartbeat {args.heartbeat:g} is out of range: use seconds between 0.05 and 60")
    if not args.silence > args.heartbeat:
        parser.error(f"--silence {args.silence:g} is invalid: use more seconds than --heartbeat ({args.heartbeat:g})")
    return args, checked_targets(parser, args)


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Run the agent until SIGTERM/SIGINT (0), or until the hub refuses it (2: its name is taken)."""
    args, targets = parse_args(argv)
    env = os.environ if environ is None else environ
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    gpu = NoGpu("disabled by --no-gpu") if args.no_gpu else detect_gpu()
    reader = TickReader(targets, gpu, host_name=args.name, rescan_every_ticks=max(1, round(30 / args.interval)))
    agent = Agent(args.master, args.name, reader, token=env.get(TOKEN_ENV, ""), interval_s=args.interval,
                  heartbeat_s=args.heartbeat, silence_s=args.silence, backlog=args.backlog)  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logger.info("agent %s sampling %s every %gs for %s (gpu: %s)", args.name, [t.describe() for t in targets],
                args.interval, agent.endpoint, gpu.reason or gpu.name)  # fmt: skip
    try:
        agent.run(stop)
    finally:
        agent.close()
    if agent.refused is not None:
        logger.error("%s", agent.refused)
        return 2
    logger.info("stopped: %d batches sent, %d dropped, %d reconnects", agent.sent_batches, agent.dropped_batches,
                agent.reconnects)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
