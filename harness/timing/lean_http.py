"""The transport of ``FeatureStoreUser.request_json``: HTTP/1.1 over a pool of keep-alive gevent sockets, the
answers parsed by httptools (llhttp, uvicorn's parser), without Locust's ``FastHttpSession`` around it.

Why: at 9,000 req/s offered in the open model, py-spy put about half of the generator's CPU in FastHttpSession's
layers (the URL parsed again per request, a CompatRequest, the cookie jar, redirect handling, the response context
manager); the open model then held 47% of wrk's rate on the lookup. geventhttpclient's own ``HTTPClient`` without
those layers cost about 49 us of client CPU per lookup (its header objects, a liveness probe of the pooled socket
per request), raw sockets parsed by httptools about 29 us (16 greenlets in a closed loop against the pinned
service, getrusage over 6 s, start-up included; the open model's capacity is in test_open_model_bench). A request is
its head written in one string, the body read whole, and Locust's ``request`` event fired by the caller with the
fields FastHttpSession gives it, so Locust's statistics, its web UI, the harness's HDR histograms and request log
see the same request.

What it leaves out: cookies, redirects (a 3xx is a failed request: the service's API never redirects), proxies,
HEAD, and bodies other than bytes or text. ``--http-client locust`` (``FEATURELOAD_HTTP_CLIENT``) sends through
Locust's FastHttpSession instead; raw ``self.client`` calls in a locustfile always do.

Connections: at most ``concurrency`` open; an idle one is reused most-recent first and dropped after
``IDLE_MAX_S`` unused (uvicorn closes idle connections after 5 s). A reused connection the service has closed
meanwhile gets the request again on a new connection if its method is idempotent; otherwise the request fails
with the cause (RFC 9110, 9.2.2).
"""

from __future__ import annotations

import base64
import re
import socket
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import gevent.socket
import gevent.ssl
import httptools
from gevent.lock import BoundedSemaphore
from locust.contrib.fasthttp import insecure_ssl_context_factory

__all__ = ["IDLE_MAX_S", "LeanAnswer", "LeanSession"]

IDLE_MAX_S = 2.0
RECV_BYTES = 256 * 1024
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS", "TRACE"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FORBIDDEN_IN_HEAD = re.compile(r"[\x00-\x20\x7f]")  # no space, CR, LF or control character in a path


class LeanAnswer:
    """What came back: ``status`` and ``body`` (bytes); ``sent_s`` (epoch s) and ``elapsed_ms``, timed from the
    moment the request had a connection (a wait for a free one is not the service's time)."""

    __slots__ = ("body", "elapsed_ms", "sent_s", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body
        self.sent_s, self.elapsed_ms = 0.0, 0.0

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _StaleConnection(Exception):
    """A reused connection was closed by the service before any byte of the answer came."""


class _Answer:
    """httptools' callbacks for one answer."""

    __slots__ = ("body", "complete", "framed", "keep_alive", "parser")

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.complete = self.framed = self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, _value: bytes) -> None:
        if len(name) in (14, 17) and name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # only right here or on the headers (httptools)
        self.complete = True


class LeanSession:
    """Requests to one base URL (``http[s]://[user:password@]host[:port][/prefix]``). ``basic_auth`` False drops
    the URL's credentials (a bearer token replaces them)."""

    def __init__(
        self,
        base_url: str,
        *,
        concurrency: int,
        connection_timeout: float,
        network_timeout: float,
        insecure: bool = True,
        basic_auth: bool = True,
        clock: Any = time.monotonic,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"host {base_url!r} is invalid: expected http[s]://host[:port][/prefix]")
        netloc = parts.netloc.rpartition("@")[2]
        self.origin = f"{parts.scheme}://{netloc}"
        self.prefix = parts.path.rstrip("/")
        self._address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        self._tls = None
        if parts.scheme == "https":
            self._tls = insecure_ssl_context_factory() if insecure else gevent.ssl.create_default_context()
        self._server_name = parts.hostname
        fixed = [f"Host: {netloc}", "User-Agent: featureload", "Accept-Encoding: identity"]
        if basic_auth and parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            fixed.append("Authorization: Basic " + base64.b64encode(credentials.encode()).decode())
        self._fixed_head = "\r\n".join(fixed)
        self._connection_timeout, self._network_timeout = connection_timeout, network_timeout
        self._slots = BoundedSemaphore(max(1, concurrency))
        self._idle: list[tuple[Any, float]] = []  # (socket, when it was last used), the most recent last
        self._clock = clock

    def request(
        self, method: str, path: str, body: bytes | bytearray | None = None, headers: dict[str, str] | None = None
    ) -> LeanAnswer:
        """Send one request and read its whole answer. Raises ValueError for a method, path or header that
        cannot be sent; what the socket raises (ConnectionRefusedError, TimeoutError, ...), ConnectionError or
        httptools.HttpParserError when no whole answer came."""
        payload = self._head(method, path, body, headers)
        if body:
            payload += body
        with self._slots:
            sent_s, sent_perf = time.time(), time.perf_counter()
            sock, reused = self._take()
            try:
                answer, keep_alive = self._exchange(sock, payload, reused)
            except _StaleConnection:
                sock.close()
                if method not in IDEMPOTENT:
                    raise ConnectionResetError(
                        f"the service closed an idle connection as the {method} was sent; not resent "
                        "(the method is not idempotent)"
                    ) from None
                sock, reused = self._connect(), False
                try:
                    answer, keep_alive = self._exchange(sock, payload, reused)
                except BaseException:
                    sock.close()
                    raise
            except BaseException:
                sock.close()
                raise
            answer.sent_s, answer.elapsed_ms = sent_s, (time.perf_counter() - sent_perf) * 1000.0
            if keep_alive:
                self._idle.append((sock, self._clock()))
            else:
                sock.close()
            return answer

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[0].close()

    def _head(self, method: str, path: str, body: bytes | bytearray | None, headers: dict[str, str] | None) -> bytes:
        if not _TOKEN.fullmatch(method) or method == "HEAD":
            raise ValueError(f"method {method!r} cannot be sent by the lean transport")
        if not path.startswith("/") or _FORBIDDEN_IN_HEAD.search(path):
            raise ValueError(f"path {path!r} is invalid: it must start with / and hold no space or control byte")
        lines = [f"{method} {self.prefix}{path} HTTP/1.1", self._fixed_head]
        if headers:
            for name, value in headers.items():
                if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
                    raise ValueError(f"header {name!r} cannot be sent: a token name and a value without CR/LF")
                lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")

    def _take(self) -> tuple[Any, bool]:
        """An idle connection used less than IDLE_MAX_S ago (closing older ones), or a new one."""
        now = self._clock()
        while self._idle:
            sock, used = self._idle.pop()
            if now - used < IDLE_MAX_S:
                return sock, True
            sock.close()
        return self._connect(), False

    def _connect(self) -> Any:
        sock = gevent.socket.create_connection(self._address, timeout=self._connection_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._server_name)
            sock.settimeout(self._network_timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def _exchange(self, sock: Any, payload: bytes, reused: bool) -> tuple[LeanAnswer, bool]:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError) as error:
            if reused:
                raise _StaleConnection from None
            try:  # the service may have answered early (413 on a body too large) and closed: that answer counts
                return self._read(sock, reused=False)[0], False
            except (OSError, httptools.HttpParserError):
                raise error from None
        return self._read(sock, reused)

    def _read(self, sock: Any, reused: bool) -> tuple[LeanAnswer, bool]:
        """The answer on ``sock`` and whether the connection can be kept."""
        answer = _Answer()
        parser = answer.parser
        try:
            received = False
            while not answer.complete:
                try:
                    data = sock.recv(RECV_BYTES)
                except ConnectionResetError:
                    if reused and not received:
                        raise _StaleConnection from None
                    raise
                if not data:
                    if reused and not received:
                        raise _StaleConnection
                    if parser.get_status_code() and not answer.framed and not answer.keep_alive:
                        break  # an answer without length: its body ends when the connection does
                    raise ConnectionError("the service closed the connection before its answer was complete")
                received = True
                parser.feed_data(data)
            return LeanAnswer(parser.get_status_code(), b"".join(answer.body)), answer.complete and answer.keep_alive
        finally:
            answer.parser = None  # no reference cycle (parser -> answer -> parser) left for the garbage collector
