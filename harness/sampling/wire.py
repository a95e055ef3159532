"""What agents and the hub say to each other over ZeroMQ (pyzmq, which Locust already depends on).

An agent's DEALER socket connects to the hub's ROUTER socket. Every message is a ZeroMQ multipart message whose
first frame is a JSON object (``{"kind": ..., ...}``); a batch adds one frame per stream, each an Arrow IPC
stream (``harness.recording.recorder.batch_to_bytes``), named in order by the header's ``streams``. No parser of our
own: JSON and Arrow IPC read them.

agent -> hub (every header carries ``token`` and ``name``)::

    hello   host, pid, instance, interval_s, heartbeat_s, targets, gpu   (at start and after each reconnect)
    batch   seq, streams, rows                                     (rows of one or more ticks, the agent's clock)
    pong    t0, t1, t2                                             (answer to a ping; t1, t2 on the agent's clock)
    beat    backlog, dropped_batches                               (every heartbeat_s)

hub -> agent::

    welcome last_seq      (the highest batch seq the hub holds from this name, -1 if none: resend the rest)
    ack     seq           (every batch up to seq is written: forget them)
    ping    t0            (the hub's clock at sending)
    who                   (this connection never said hello: say it)
    refused reason        (another running agent has this name: the agent stops, exit status 2)

The token is never written anywhere: the hub compares it in constant time and drops a message whose token is
wrong, without an answer.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping
from typing import Any

__all__ = ["TOKEN_ENV", "agents_bind_refusal", "decode", "encode", "is_loopback", "parse_address", "token_refusal"]

TOKEN_ENV = "FEATURELOAD_AGENT_TOKEN"
MAX_HEADER_BYTES = 64 * 1024  # a header is a few hundred bytes; anything bigger is not ours


def encode(header: Mapping[str, Any], *frames: bytes) -> list[bytes]:
    """A multipart message: the JSON header, then ``frames``."""
    return [json.dumps(header, separators=(",", ":")).encode(), *frames]


def decode(frames: list[bytes]) -> tuple[dict[str, Any], list[bytes]] | None:
    """(header, the other frames), or None for a message that is not ours (not a JSON object with a kind)."""
    if not frames or len(frames[0]) > MAX_HEADER_BYTES:
        return None
    try:
        header = json.loads(frames[0])
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        return None
    return header, frames[1:]


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as (host, port); raises ValueError naming ``what``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} {text!r} is invalid: use HOST:PORT, e.g. 127.0.0.1:5570 or 0.0.0.0:5570")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is only reachable from this machine; a name that does not
    resolve, or resolves to anything else, is not."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host == "*":
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def token_refusal(bind: str, token: str | None, what: str = "--agents-bind") -> str | None:
    """Why listening on ``bind`` with ``token`` is refused (one line), or None: beyond loopback a token is
    required. Raises ValueError for a malformed address."""
    host, _ = parse_address(bind, what)
    if not token and not is_loopback(host):
        return (f"{what} {bind} listens beyond loopback: set {TOKEN_ENV} (the same secret on every agent) "
                "or bind to 127.0.0.1")  # fmt: skip
    return None


def agents_bind_refusal(bind: str, environ: Mapping[str, str]) -> str | None:
    """Why Locust's ``--agents-bind`` cannot be used (one line naming the option), or None (also when unset)."""
    if not bind:
        return None
    try:
        return token_refusal(bind, environ.get(TOKEN_ENV))
    except ValueError as exc:
        return str(exc)
