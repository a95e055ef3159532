"""uvicorn's httptools protocol with the guards a server facing hostile clients needs (issue 15).

uvicorn's httptools protocol (what ``http="auto"`` runs) has no cap on the request head, no header or body
timeout and no cap on connections: one 200 MB header cost 70 s of CPU in the parser while every other client
waited, and 20,000 silent sockets locked every new client out. ``GuardedHttpToolsProtocol`` keeps httptools (the
hot path's speed) and adds, per worker process, from the settings (``service.settings``):

- ``max_head_bytes``: the bytes received while a request head (request line and headers) is incomplete are
  counted; past the cap the client gets ``431`` and the connection is closed, after the parser saw at most the
  cap plus one read (256 KiB), so a huge header costs microseconds, not minutes.
- ``header_timeout_s``: a head must be complete within this time of the connection opening, or of the first byte
  of the next request on a keep-alive connection (slowloris): ``408`` (a connection that sent nothing is closed
  silently).
- ``body_timeout_s`` and ``min_body_rate_bytes_s``: a request body must not stall for ``body_timeout_s``, nor
  arrive slower than the minimum rate once ``body_timeout_s`` has passed (slow body): ``408`` if no response has
  started, else the connection is closed. Time the server itself paused reading (flow control: the app has not
  read the body yet) is not held against the client.
- ``max_connections``: past this many open connections in the worker, a new connection gets ``503`` with
  ``Retry-After`` and is closed, and a warning is logged (at most once a second). Not uvicorn's
  ``limit_concurrency``: that counts connections and tasks together, answers only once a head has been parsed,
  and in plain text.
- ``keep_alive_timeout_s`` (uvicorn's ``timeout_keep_alive``): an idle keep-alive connection is closed.

Every refusal has the service's JSON error body ``{"error", "detail"}`` and ``connection: close``; the server then
stops sending (FIN) and reads and discards what the client still sends for up to a second before closing, so a
client still writing its request reads the answer instead of a connection reset.

Cost on the hot path: a few attribute checks per request and two parser callbacks wrapped (where a head ends,
where a message ends); a head that arrives whole in one read starts no timer. The timers are at most one per
connection, re-armed lazily (a timer fires at the recorded deadline, or re-arms itself to the current one), never
one per request.

``python -m service`` runs it (``http="service.http_protocol:GuardedHttpToolsProtocol"``); plain ``uvicorn
service.app:app`` runs uvicorn's own protocol, without these guards, unless given ``--http`` with that path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from service.settings import Settings

__all__ = ["ConnectionLimits", "GuardedHttpToolsProtocol", "effective_max_connections", "refusal_bytes"]

logger = logging.getLogger("service.http")

# A refused connection is drained (its input read and discarded) this long, or this many bytes, then closed.
LINGER_S = 1.0
LINGER_BYTES = 16 << 20
# At most this many refused connections linger at once in a worker; past it a refusal closes at once (a flood of
# refused connections must not hold file descriptors for a second each).
LINGER_MAX = 1024
# File descriptors a worker keeps for everything but client connections (store files, pipes, the listener...).
_RESERVED_FDS = 256

_NONE, _HEAD, _BODY, _REFUSED = 0, 1, 2, 3
# The base class's hot-path methods, bound once (a module global is a cheaper lookup than a class attribute).
_feed = HttpToolsProtocol.data_received
_headers_complete = HttpToolsProtocol.on_headers_complete
_message_complete = HttpToolsProtocol.on_message_complete


def effective_max_connections(max_connections: int) -> int:
    """``max_connections``, lowered so the connections fit in the open-file limit (else ``accept`` would fail with
    EMFILE before the cap answers with a clear refusal)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - _RESERVED_FDS))


@dataclass(frozen=True)
class ConnectionLimits:
    """The connection-level limits of one worker (see the module docstring)."""

    max_head_bytes: int
    header_timeout_s: float
    body_timeout_s: float
    min_body_rate_bytes_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_head_bytes=settings.max_head_bytes,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            min_body_rate_bytes_s=settings.min_body_rate_bytes_s,
            max_connections=effective_max_connections(settings.max_connections),
        )


def refusal_bytes(
    status: int, code: str, detail: str, default_headers: list[tuple[bytes, bytes]], retry_after_s: int | None = None
) -> bytes:
    """A complete ``connection: close`` response with the service's JSON error body."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    parts = [STATUS_LINE[status]]
    for name, value in default_headers:
        parts += [name, b": ", value, b"\r\n"]
    parts.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % len(body))
    if retry_after_s is not None:
        parts.append(b"retry-after: %d\r\n" % retry_after_s)
    parts += [b"\r\n", body]
    return b"".join(parts)


class _Throttled:
    """A warning logged at most once per ``interval_s``, with how many were suppressed meanwhile."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._next = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        suppressed, self._suppressed, self._next = self._suppressed, 0, now + self.interval_s
        if suppressed:
            message += " (and %d more like it in the last second)"
            args = (*args, suppressed)
        logger.warning(message, *args)


_refused_log = _Throttled()
_head_log = _Throttled()
_timeout_log = _Throttled()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a head size cap, header and body timeouts and a connection cap (module docstring).

    The limits come from ``limits`` when a subclass or a test sets it, else from the ``FEATURESTORE_*`` variables
    (read once per process, like ``service.app``).
    """

    limits: ClassVar[ConnectionLimits | None] = None
    lingering: ClassVar[int] = 0  # refused connections of this process still being drained

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = type(self).limits
        if limits is None:
            limits = type(self).limits = ConnectionLimits.from_settings(Settings.from_env(os.environ))
        self._max_head = limits.max_head_bytes
        self._header_timeout = limits.header_timeout_s
        self._body_timeout = limits.body_timeout_s
        self._min_rate = limits.min_body_rate_bytes_s
        self._max_connections = limits.max_connections
        self._phase = _NONE
        self._deadline = 0.0  # loop time by which the phase must end (or the next body bytes arrive); 0: none
        self._timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._body_started = 0.0
        self._body_bytes = 0
        self._drained = 0

    # Connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._max_connections:
            self.transport = transport  # the base class's connection_lost closes it
            peer = transport.get_extra_info("peername")
            _refused_log.warning(
                "refused a connection from %s: %d connections are open, the limit is %d per worker (max_connections)",
                peer[0] if isinstance(peer, tuple) else peer,
                len(self.connections),
                self._max_connections,
            )
            detail = (
                f"the server has {len(self.connections)} open connections, its limit (max_connections); "
                "retry in a moment"
            )
            self._refuse(503, "too_many_connections", detail, retry_after_s=1)
            return
        super().connection_made(transport)
        self._phase = _HEAD  # the first request's head is due within header_timeout_s of the connection
        self._deadline = self.loop.time() + self._header_timeout
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._phase == _REFUSED:
            GuardedHttpToolsProtocol.lingering -= 1
        self._phase = _NONE
        super().connection_lost(exc)

    # Data

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase == _BODY:  # more of a body (possibly its end, and what follows it)
            _feed(self, data)
            if self._phase == _BODY:
                self._body_progress(len(data))
            elif self._phase == _NONE:
                self._between_requests()
            return
        if phase == _REFUSED:
            self._drained += len(data)
            if self._drained > LINGER_BYTES:
                self.transport.close()
            return
        started = phase == _NONE  # the first bytes of the next request
        if started:
            self._phase, self._head_bytes = _HEAD, 0
        head_bytes = self._head_bytes + len(data)
        self._head_bytes = head_bytes
        _feed(self, data)
        phase = self._phase
        if phase == _HEAD:  # incomplete (a whole head in one read, the usual case, never gets here)
            if started:
                self._deadline = self.loop.time() + self._header_timeout
                self._arm()
            if head_bytes > self._max_head:
                self._head_too_large(head_bytes)
        elif phase == _BODY:
            now = self.loop.time()
            self._body_started, self._body_bytes, self._deadline = now, 0, now + self._body_timeout
            self._arm()
        elif phase == _NONE:
            self._deadline = 0.0

    # Parser callbacks: where a head ends and where a message ends (uvicorn's own callbacks do the work)

    def on_headers_complete(self) -> None:
        _headers_complete(self)
        if self._phase != _REFUSED:
            self._phase = _BODY  # until on_message_complete: a message without a body ends at once

    def on_message_complete(self) -> None:
        _message_complete(self)
        if self._phase != _REFUSED:
            self._phase = _NONE

    def _between_requests(self) -> None:
        """A body just ended. If the app already answered (it refused the body unread), nothing else will arm
        uvicorn's keep-alive timer: wait for the next head as for a new connection's."""
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and not self.transport.is_closing():
            self._phase, self._head_bytes = _HEAD, 0
            self._deadline = self.loop.time() + self._header_timeout
            self._arm()
        else:
            self._deadline = 0.0

    def _body_progress(self, received: int) -> None:
        self._body_bytes += received
        deadline = self.loop.time() + self._body_timeout
        if self._min_rate > 0:
            deadline = min(deadline, self._body_started + self._body_timeout + self._body_bytes / self._min_rate)
        self._deadline = deadline
        self._arm()

    # Timers: one per connection, re-armed to the current deadline when it fires early

    def _arm(self) -> None:
        timer = self._timer
        if timer is not None:
            if timer.when() <= self._deadline:
                return
            timer.cancel()
        self._timer = self.loop.call_at(self._deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = None
        if not self._deadline or self._phase == _NONE:
            return
        now = self.loop.time()
        if now < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._on_deadline)
            return
        if self._phase == _REFUSED or self.transport.is_closing():
            self.transport.close()
            return
        if (self.flow is not None and self.flow.read_paused) or (self.cycle and self.cycle.waiting_for_100_continue):
            # The server, not the client, holds the data back (flow control, or 100-continue not yet sent).
            self._body_started = now - self._body_bytes / self._min_rate if self._min_rate > 0 else now
            self._deadline = now + max(self._header_timeout if self._phase == _HEAD else self._body_timeout, 0.05)
            self._arm()
            return
        if self._phase == _HEAD:
            self._head_timed_out()
        else:
            self._body_timed_out(now)

    # Refusals

    def _head_too_large(self, head_bytes: int) -> None:
        if self.transport.is_closing():
            return
        _head_log.warning(
            "refused a request head of more than %d bytes (max_head_bytes=%d) from %s",
            head_bytes,
            self._max_head,
            self.client[0] if self.client else "?",
        )
        detail = (
            f"the request line and headers are more than {self._max_head} bytes (max_head_bytes); "
            "send fewer or smaller headers"
        )
        self._refuse(431, "request_header_fields_too_large", detail)

    def _head_timed_out(self) -> None:
        client = self.client[0] if self.client else "?"
        if self._head_bytes == 0:  # nothing of a request yet: an idle socket, closed without a word
            logger.debug("closed a connection from %s that sent no request in %g s", client, self._header_timeout)
            self.transport.close()
            return
        _timeout_log.warning(
            "closed a connection from %s: its request head was incomplete after %g s (header_timeout_s)",
            client,
            self._header_timeout,
        )
        detail = (
            f"the request head (request line and headers) was not complete within {self._header_timeout:g} s "
            "(header_timeout_s)"
        )
        self._refuse(408, "request_timeout", detail)

    def _body_timed_out(self, now: float) -> None:
        cycle = self.cycle
        client = self.client[0] if self.client else "?"
        _timeout_log.warning(
            "closed a connection from %s: its request body stalled (%d bytes in %.1f s; body_timeout_s=%g, "
            "min_body_rate_bytes_s=%g)",
            client,
            self._body_bytes,
            now - self._body_started,
            self._body_timeout,
            self._min_rate,
        )
        if cycle is None or cycle.response_started:
            self.transport.close()
            return
        detail = (
            f"the request body stalled: {self._body_bytes} bytes in {now - self._body_started:.1f} s; it must not "
            f"pause for {self._body_timeout:g} s (body_timeout_s) nor arrive slower than "
            f"{self._min_rate:g} bytes/s (min_body_rate_bytes_s)"
        )
        self._refuse(408, "request_timeout", detail)

    def _refuse(self, status: int, code: str, detail: str, retry_after_s: int | None = None) -> None:
        """Answer ``status`` with a JSON error, stop sending, drain the client's input briefly, then close."""
        transport = self.transport
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A request in progress (a stalled body): its app task sees a disconnect and sends nothing more.
            cycle.disconnected = True
            cycle.message_event.set()
        self._unset_keepalive_if_required()
        transport.write(refusal_bytes(status, code, detail, self.server_state.default_headers, retry_after_s))
        if GuardedHttpToolsProtocol.lingering >= LINGER_MAX or not transport.can_write_eof():
            self._phase = _NONE
            transport.close()
            return
        GuardedHttpToolsProtocol.lingering += 1
        self._phase, self._drained = _REFUSED, 0
        transport.write_eof()
        transport.resume_reading()  # drain even if flow control had paused reading
        self._deadline = self.loop.time() + LINGER_S
        self._arm()
