"""The harness's lean HTTP transport (harness.timing.lean_http): keep-alive reuse, the pool's bound, a connection the
service closed while idle, answers framed by length, by chunks or by the connection's end, a service that never
answers, and requests that cannot be sent.

Against a real uvicorn service where the service can show it, and otherwise against a loopback socket server that
misbehaves on purpose (each connection handled in its own thread by a scripted handler).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import gevent
import gevent.event
import orjson
import pytest

from tests.unpatched import locust_unpatched

with locust_unpatched():  # Locust's classes without a gevent-patched pytest process
    from harness.timing.lean_http import IDLE_MAX_S, LeanSession

Handler = Callable[[socket.socket, "ScriptedServer"], None]


class ScriptedServer:
    """A loopback TCP server: every accepted connection runs ``handler(connection, server)`` in a thread.
    ``connections`` counts them; ``heads`` keeps each request head read with ``read_request``."""

    def __init__(self, handler: Handler) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.heads: list[bytes] = []
        self.handler = handler
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            self._open.append(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):  # the client went away: nothing left to serve
            self.handler(connection, self)

    def read_request(self, connection: socket.socket) -> bytes | None:
        """The next request's head (its body read and dropped), or None when the client closed."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
        while len(body) < length:
            body += connection.recv(65536)
        self.heads.append(head)
        return head

    def close(self) -> None:
        for sock in (self.listener, *self._open):  # wakes the threads blocked in accept() and recv()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def scripted() -> Iterator[Callable[[Handler], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(handler: Handler) -> ScriptedServer:
        servers.append(ScriptedServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def keep_alive_json(connection: socket.socket, server: ScriptedServer) -> None:
    while (head := server.read_request(connection)) is not None:
        connection.sendall(answer(orjson.dumps({"line": head.split(b"\r\n")[0].decode()})))


def session(url: str, **kwargs) -> LeanSession:
    options = {"concurrency": 4, "connection_timeout": 5.0, "network_timeout": 5.0, **kwargs}
    return LeanSession(url, **options)


def test_requests_to_a_real_service_reuse_one_connection(service_factory) -> None:
    service = service_factory()
    client = session(service.base_url)
    answers = [client.request("GET", "/v1/ping") for _ in range(20)]
    assert {a.status for a in answers} == {200} and orjson.loads(answers[0].body) == {"pong": True}
    assert all(a.elapsed_ms > 0 and abs(a.sent_s - time.time()) < 60 for a in answers)
    assert len(client._idle) == 1, "20 requests in a row must share one keep-alive connection"
    refused = client.request("PUT", "/v1/groups/g/features/f", b"not arrow", {"Content-Type": "text/plain"})
    assert 400 <= refused.status < 500 and orjson.loads(refused.body), refused.text
    client.close()


def test_the_pool_never_opens_more_connections_than_its_concurrency(scripted) -> None:
    in_flight = {"now": 0, "most": 0}
    lock = threading.Lock()

    def slow(connection: socket.socket, server: ScriptedServer) -> None:
        while server.read_request(connection) is not None:
            with lock:
                in_flight["now"] += 1
                in_flight["most"] = max(in_flight["most"], in_flight["now"])
            time.sleep(0.02)  # the service's own slowness, not synchronization
            with lock:
                in_flight["now"] -= 1
            connection.sendall(answer(b"{}"))

    server = scripted(slow)
    client = session(server.url, concurrency=2)
    greenlets = [gevent.spawn(client.request, "GET", f"/x/{i}") for i in range(10)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    assert [g.value.status for g in greenlets] == [200] * 10
    assert server.connections == 2 and in_flight["most"] == 2


def test_a_get_on_a_connection_the_service_closed_is_sent_again_and_a_post_fails_with_the_cause(scripted) -> None:
    def one_answer_per_connection(connection: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(connection) is not None:
            connection.sendall(answer(b'{"ok": true}'))  # keep-alive announced, then closed: an idle timeout

    server = scripted(one_answer_per_connection)
    client = session(server.url)
    assert client.request("GET", "/a").status == 200
    assert client.request("GET", "/b").status == 200  # the closed connection, then a new one
    assert server.heads[-1].startswith(b"GET /b ")
    with pytest.raises(ConnectionResetError, match="not resent"):
        client.request("POST", "/c", b"{}")
    assert not any(head.startswith(b"POST") for head in server.heads), "a POST is never sent twice"


def test_an_idle_connection_older_than_the_limit_is_not_reused(scripted) -> None:
    now = {"s": 100.0}
    server = scripted(keep_alive_json)
    client = session(server.url, clock=lambda: now["s"])
    client.request("GET", "/a")
    now["s"] += IDLE_MAX_S / 2
    client.request("GET", "/b")
    assert server.connections == 1
    now["s"] += IDLE_MAX_S
    client.request("GET", "/c")
    assert server.connections == 2


def test_chunked_and_until_close_answers_are_read_whole(scripted) -> None:
    def chunked(connection: socket.socket, server: ScriptedServer) -> None:
        while server.read_request(connection) is not None:
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )

    def until_close(connection: socket.socket, server: ScriptedServer) -> None:
        server.read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nno length")

    client = session(scripted(chunked).url)
    assert [client.request("GET", "/").body for _ in range(2)] == [b"hello world"] * 2
    assert len(client._idle) == 1
    closing = session(scripted(until_close).url)
    assert closing.request("GET", "/").body == b"no length"
    assert closing._idle == [], "a connection the service closes is not kept"


def test_an_early_answer_to_a_body_the_service_will_not_read_is_the_request_s_answer(scripted) -> None:
    def refuse_large(connection: socket.socket, server: ScriptedServer) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += connection.recv(65536)
        connection.sendall(answer(b'{"detail": "too large"}', "413 Content Too Large", "Connection: close\r\n"))
        connection.shutdown(socket.SHUT_WR)  # then leaves the body unread

    refused = session(scripted(refuse_large).url).request("PUT", "/big", b"x" * (64 << 20))
    assert refused.status == 413 and orjson.loads(refused.body) == {"detail": "too large"}


def test_an_answer_cut_short_fails_and_a_silent_service_times_out(scripted) -> None:
    def cut(connection: socket.socket, server: ScriptedServer) -> None:
        server.read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")

    def silent(connection: socket.socket, server: ScriptedServer) -> None:
        server.read_request(connection)
        connection.recv(1)  # until the client gives up and closes

    with pytest.raises(ConnectionError, match="before its answer was complete"):
        session(scripted(cut).url).request("GET", "/")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        session(scripted(silent).url, network_timeout=0.3).request("GET", "/")
    assert time.monotonic() - started < 5


def test_the_url_s_prefix_and_credentials_are_sent_and_a_token_replaces_them(scripted) -> None:
    server = scripted(keep_alive_json)
    url = f"http://user:p%40ss@127.0.0.1:{server.port}/base/"
    session(url).request("GET", "/v1/ping")
    session(url, basic_auth=False).request("GET", "/v1/ping", headers={"Authorization": "Bearer t"})
    with_basic, with_token = server.heads
    assert with_basic.startswith(b"GET /base/v1/ping HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Basic dXNlcjpwQHNz" in with_basic  # user:p@ss
    assert b"Basic" not in with_token and b"\r\nAuthorization: Bearer t" in with_token
    assert f"Host: 127.0.0.1:{server.port}".encode() in with_basic and b"user" not in with_basic.split(b"\r\n")[1]


@pytest.mark.parametrize(
    ("method", "path", "headers", "named"),
    [
        ("GET", "/a b", None, "path"),
        ("GET", "/a\r\nX: y", None, "path"),
        ("GET", "no-slash", None, "path"),
        ("G T", "/", None, "method"),
        ("HEAD", "/", None, "method"),
        ("GET", "/", {"X-Bad": "a\r\nInjected: 1"}, "header"),
    ],
)
def test_a_request_that_cannot_be_sent_is_refused_before_any_byte_goes_out(scripted, method, path, headers, named):
    server = scripted(keep_alive_json)
    with pytest.raises(ValueError, match=named):
        session(server.url).request(method, path, headers=headers)
    assert server.heads == []


@pytest.mark.parametrize("url", ["ftp://host/", "http:///nohost", "localhost:8000"])
def test_a_host_that_is_not_an_http_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="host"):
        session(url)


def test_a_stopped_user_closes_its_keep_alive_connections_and_records_each_request(scripted) -> None:
    """A FeatureStoreUser in a real Locust Environment: its requests fire Locust's request event with
    FastHttpSession's fields, and when its greenlet is killed (a run's stop) its idle connection is closed, not
    left to the garbage collector."""
    with locust_unpatched():
        from argparse import Namespace

        from gevent.pool import Group
        from locust import constant, task
        from locust.env import Environment

        from harness.users import FeatureStoreUser

    closed = threading.Event()

    def serve_until_closed(connection: socket.socket, server: ScriptedServer) -> None:
        keep_alive_json(connection, server)
        closed.set()  # read_request saw the client close the connection

    server = scripted(serve_until_closed)
    answered = gevent.event.Event()

    class PingUser(FeatureStoreUser):
        host = server.url
        wait_time = constant(0.01)

        def on_start(self) -> None:  # no catalog
            pass

        @task
        def ping(self) -> None:
            self.request_json("GET", "/v1/ping", name="ping")
            answered.set()

    options = Namespace(http_client="lean", read_token=None, write_token=None, arrival_rate=0.0)
    environment = Environment(user_classes=[PingUser], host=server.url, parsed_options=options)
    events: list[dict] = []
    environment.events.request.add_listener(lambda **fields: events.append(fields))
    group = Group()
    user = PingUser(environment)
    user.start(group)
    assert answered.wait(timeout=10)
    group.kill(timeout=10)
    assert closed.wait(timeout=10), "the stopped user's idle connection is still open"
    assert server.connections == 1 and len(server.heads) >= 1
    first = events[0]
    assert first["request_type"] == "GET" and first["name"] == "ping" and first["exception"] is None
    assert first["response_time"] > 0 and first["response_length"] == len(
        orjson.dumps({"line": "GET /v1/ping HTTP/1.1"})
    )
