"""The service under hostile clients (issue 15, section 2): a huge head, slowloris heads, stalled bodies, idle and
excess connections, and bodies in flight past the budget. Against real uvicorn processes on 127.0.0.1; every wait
is a bounded ``recv`` or a bounded poll, never a bare sleep."""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing

import httpx
import pytest

from features.workloads import MemoryBudget
from service.errors import ApiError
from service.guards import BodyReservation, InflightBodies
from service.launcher import ServiceProcess
from tests.conftest import ServiceFactory

KIB, MIB = 1 << 10, 1 << 20
PING = b"GET /v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def connect(service: ServiceProcess) -> socket.socket:
    sock = socket.create_connection((service.host, service.port), timeout=5.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket, timeout_s: float) -> tuple[bytes, bool]:
    """What the server sends within ``timeout_s``: the bytes of one response (or up to its close) and whether the
    server closed the connection (EOF or reset) meanwhile."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
        if sep and length and len(body) >= int(length.group(1)) and b"connection: close" not in head.lower():
            break
    return data, False


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), answer[:200]
    return int(head.split()[1]), json.loads(body)


def wait_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, float | None]:
    """Everything the server sends until it closes the connection; the seconds it took (None: still open)."""
    started = time.monotonic()
    data = b""
    while time.monotonic() - started < timeout_s:
        data_part, closed = read_answer(sock, timeout_s - (time.monotonic() - started))
        data += data_part
        if closed:
            return data, time.monotonic() - started
    return data, None


def put_records_body(size: int) -> bytes:
    """A JSON frame of about ``size`` bytes that the service stores."""
    rows = max(1, size // 1100)
    records = [{"id": i, "x": "y" * 1000} for i in range(rows)]
    return json.dumps({"records": records}).encode()


@pytest.fixture(scope="module")
def defaults(module_service_factory: ServiceFactory) -> ServiceProcess:
    """A service with the default limits: those are what must hold."""
    return module_service_factory()


@pytest.fixture(scope="module")
def quick(module_service_factory: ServiceFactory) -> ServiceProcess:
    """A service with short timeouts, so that the tests take seconds."""
    return module_service_factory(
        header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_timeout_s=0.5, min_body_rate_bytes_s=2000
    )


def test_a_huge_header_gets_431_at_once_and_other_clients_are_served(defaults: ServiceProcess) -> None:
    sent = [0]
    done = threading.Event()
    hostile = connect(defaults)

    def send_huge_header() -> None:  # up to 64 MB of one header, until the server answers or closes
        chunk = b"a" * (256 * KIB)
        try:
            hostile.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ")
            while sent[0] < 64 * MIB and not select.select([hostile], [], [], 0)[0]:
                hostile.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass  # the server stopped reading: expected once it refused
        finally:
            done.set()

    started = time.monotonic()
    sender = threading.Thread(target=send_huge_header, daemon=True)
    sender.start()
    ping_s = []
    with httpx.Client(base_url=defaults.base_url, timeout=10.0) as api:
        for _ in range(20):
            t0 = time.monotonic()
            assert api.get("/v1/ping").status_code == 200
            ping_s.append(time.monotonic() - t0)
    with closing(hostile):
        answer, _ = read_answer(hostile, 10.0)
        elapsed = time.monotonic() - started
        done.wait(10.0)
    status, body = status_and_json(answer)
    assert status == 431 and body["error"] == "request_header_fields_too_large", answer[:500]
    assert "max_head_bytes" in body["detail"]
    assert b"connection: close" in answer.lower()
    assert sent[0] < 32 * MIB, f"the server read {sent[0]} bytes of head before refusing"
    assert elapsed < 5.0, f"the 431 took {elapsed:.1f} s"
    assert max(ping_s) < 2.0, f"pings on another connection waited up to {max(ping_s):.2f} s"


def test_a_slowloris_head_is_answered_408_and_closed(quick: ServiceProcess) -> None:
    with closing(connect(quick)) as slow, closing(connect(quick)) as silent:
        slow.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        for _ in range(2):  # still trickling bytes: the head must be complete within the timeout, however it comes
            slow.sendall(b"a")
            assert not select.select([slow], [], [], 0.1)[0]
        with httpx.Client(base_url=quick.base_url, timeout=5.0) as api:  # meanwhile others are served
            assert api.get("/v1/ping").status_code == 200
        answer, slow_s = wait_closed(slow, 5.0)
        _, silent_s = wait_closed(silent, 5.0)
    assert slow_s is not None and silent_s is not None, "a connection with no complete head was never closed"
    status, body = status_and_json(answer)
    assert status == 408 and body["error"] == "request_timeout" and "header_timeout_s" in body["detail"]
    assert slow_s < 3.0 and silent_s < 3.0


def test_an_idle_keep_alive_connection_is_closed(quick: ServiceProcess) -> None:
    with closing(connect(quick)) as sock:
        sock.sendall(PING)
        answer, closed = read_answer(sock, 5.0)
        assert answer.startswith(b"HTTP/1.1 200") and not closed
        sock.sendall(PING)  # a second request on the same connection: it is kept alive between requests
        answer, closed = read_answer(sock, 5.0)
        assert answer.startswith(b"HTTP/1.1 200") and not closed
        rest, idle_s = wait_closed(sock, 4.0)
    assert rest == b"" and idle_s is not None and idle_s < 3.0, "an idle keep-alive connection stayed open"


def test_a_stalled_or_trickling_body_is_answered_408(quick: ServiceProcess) -> None:
    head = (
        b"PUT /v1/groups/slow/features/f HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    with closing(connect(quick)) as stalled, closing(connect(quick)) as trickling:
        stalled.sendall(head + b'{"records": [')
        trickling.sendall(head + b'{"records": [')
        answer, closed_after = b"", None
        started = time.monotonic()
        for _ in range(40):  # 100 bytes every 0.1 s: progress within body_timeout_s, but 1000 bytes/s < 2000
            trickling.sendall(b" " * 100)
            if select.select([trickling], [], [], 0.1)[0]:
                answer, closed_after = wait_closed(trickling, 3.0)
                break
        trickle_s = time.monotonic() - started
        stalled_answer, stalled_s = wait_closed(stalled, 5.0)
    assert stalled_s is not None, "a stalled body kept its connection open"
    status, body = status_and_json(stalled_answer)
    assert status == 408 and "body_timeout_s" in body["detail"]
    assert closed_after is not None and answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert trickle_s < 3.0, f"a body trickling at half the minimum rate held its connection {trickle_s:.1f} s"


def test_connections_past_the_cap_are_refused_with_503_while_open_ones_work(service_factory: ServiceFactory) -> None:
    service = service_factory(max_connections=20)
    with ExitStack() as stack:
        held = [stack.enter_context(closing(connect(service))) for _ in range(20)]
        for sock in held:  # each connection is served (and so accepted) before the next test step
            sock.sendall(PING)
            assert read_answer(sock, 5.0)[0].startswith(b"HTTP/1.1 200")
        for _ in range(5):  # each new connection past the cap: a clear refusal
            with httpx.Client(base_url=service.base_url, timeout=5.0) as api:
                refused = api.get("/v1/ping")
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "too_many_connections" and "max_connections" in refused.json()["detail"]
            assert refused.headers["retry-after"] == "1" and refused.headers["connection"] == "close"
        held[0].sendall(PING)  # the open connections still work
        assert read_answer(held[0], 5.0)[0].startswith(b"HTTP/1.1 200")
        for sock in held[:5]:
            sock.close()
        for _ in range(100):  # once some close, new clients are served again (bounded poll)
            with httpx.Client(base_url=service.base_url, timeout=5.0) as api:
                if api.get("/v1/ping").status_code == 200:
                    break
        else:
            pytest.fail("new connections were still refused after 5 of the 20 closed")
    assert "refused a connection" in service.log_text() and "max_connections" in service.log_text()


def _inflight_bytes(api: httpx.Client) -> float:
    match = re.search(r"^featurestore_inflight_body_bytes ([0-9.e+]+)", api.get("/metrics").text, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


def _hold_bodies(service: ServiceProcess, stack: ExitStack, count: int, size: int) -> list[socket.socket]:
    """``count`` PUTs declaring ``size`` bytes each, their bodies begun and then held back."""
    head = (
        b"PUT /v1/groups/held/features/f HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    socks = []
    for _ in range(count):
        sock = stack.enter_context(closing(connect(service)))
        sock.sendall(head + b'{"records": [')
        socks.append(sock)
    return socks


def test_bodies_in_flight_past_the_budget_get_503_and_the_budget_is_released(service_factory: ServiceFactory) -> None:
    service = service_factory(max_body_bytes=2 * MIB, max_inflight_body_bytes=4 * MIB)
    body = put_records_body(3 * MIB // 2)
    json_type = {"content-type": "application/json"}
    with httpx.Client(base_url=service.base_url, timeout=10.0) as api:
        with ExitStack() as stack:
            _hold_bodies(service, stack, 2, len(body))
            for _ in range(100):  # until both requests reserved their declared length (bounded poll)
                if _inflight_bytes(api) >= 2 * len(body):
                    break
            refused = api.put("/v1/groups/g/features/f", content=body, headers=json_type)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "body_budget_exhausted"
            assert "max_inflight_body_bytes" in refused.json()["detail"] and refused.headers["retry-after"] == "1"

            def chunks() -> Iterator[bytes]:  # no Content-Length: the budget is taken as the body streams in
                for start in range(0, len(body), 64 * KIB):
                    yield body[start : start + 64 * KIB]

            streamed = api.put("/v1/groups/g/features/f", content=chunks(), headers=json_type)
            assert streamed.status_code == 503 and streamed.json()["error"] == "body_budget_exhausted", streamed.text
            assert api.get("/v1/ping").status_code == 200  # requests without a body are not affected
        # The held requests end when their clients leave: their reservations are released.
        for _ in range(100):
            accepted = api.put("/v1/groups/g/features/f", content=body, headers=json_type)
            if accepted.status_code != 503:
                break
        assert accepted.status_code == 201, accepted.text
        assert _inflight_bytes(api) == 0


def test_bodies_in_flight_draw_on_the_memory_budget(service_factory: ServiceFactory) -> None:
    service = service_factory(max_request_memory_mb=8, max_total_memory_mb=8, max_body_bytes=2 * MIB)
    body = put_records_body(3 * MIB // 2)
    json_type = {"content-type": "application/json"}
    with httpx.Client(base_url=service.base_url, timeout=10.0) as api:
        holder = threading.Thread(
            target=lambda: api.post("/v1/load/memory", json={"megabytes": 7.5, "hold_s": 2}), daemon=True
        )
        holder.start()
        for _ in range(200):
            if re.search(r"^featurestore_memory_held_bytes [1-9]", api.get("/metrics").text, re.MULTILINE):
                break
        refused = api.put("/v1/groups/m/features/f", content=body, headers=json_type)
        holder.join(10.0)
        assert refused.status_code == 503, refused.text
        assert "max_total_memory_mb" in refused.json()["detail"]
        assert api.put("/v1/groups/m/features/f", content=body, headers=json_type).status_code == 201


@pytest.fixture
def keepalive_clients(quick: ServiceProcess) -> Iterator[list[httpx.Client]]:
    with ExitStack() as stack:
        yield [stack.enter_context(httpx.Client(base_url=quick.base_url, timeout=5.0)) for _ in range(8)]


def test_ordinary_keep_alive_clients_are_untouched(keepalive_clients: list[httpx.Client]) -> None:
    """Clients sending requests back to back on kept-alive connections, with bodies, see no refusal."""
    for round_ in range(10):
        for number, client in enumerate(keepalive_clients):
            assert client.get("/v1/ping").status_code == 200
            post = client.post("/v1/online/ka/missing", json={"entity_ids": [1, 2]})
            assert post.status_code == 404, post.text  # the body was read and routed (no such feature), not refused
            if round_ == number:
                put = client.put(f"/v1/groups/ka/features/f{number}", json={"records": [{"id": 1, "x": 2}]})
                assert put.status_code == 201, put.text


def test_the_head_cap_holds_after_a_body_the_app_refused_unread(service_factory: ServiceFactory) -> None:
    """An early answer (413 before the body was read) leaves the rest of the body to be discarded; the next head on
    that connection is still capped."""
    service = service_factory(max_body_bytes=2048)
    with closing(connect(service)) as sock:
        sock.sendall(
            b"PUT /v1/groups/g/features/f HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 4096\r\n\r\n" + b" " * 10
        )
        answer, closed = read_answer(sock, 5.0)
        assert answer.startswith(b"HTTP/1.1 413") and not closed, answer[:300]
        sock.sendall(b" " * 4086 + b"GET /v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ")
        chunk, sent = b"a" * (256 * KIB), 0
        try:
            while sent < 16 * MIB and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        answer, _ = read_answer(sock, 5.0)
    assert answer.startswith(b"HTTP/1.1 431"), (sent, answer[:300])


def test_a_body_reservation_draws_on_both_budgets_and_gives_everything_back() -> None:
    inflight, memory = InflightBodies(4 * MIB), MemoryBudget(3.0)
    first, second = BodyReservation(inflight, memory), BodyReservation(inflight, memory)
    first.grow_to(100)  # a small body only counts in flight
    assert (inflight.held_bytes, memory.held_mb) == (100, 0)
    first.grow_to(2 * MIB)
    assert (inflight.held_bytes, memory.held_mb) == (2 * MIB, 2.0)
    with pytest.raises(ApiError) as caught:  # 2 + 2 MB > the 3 MB memory budget: nothing more is held
        second.grow_to(2 * MIB)
    assert caught.value.status_code == 503 and "max_total_memory_mb" in caught.value.detail
    assert caught.value.headers == {"Retry-After": "1"}
    assert (inflight.held_bytes, memory.held_mb) == (2 * MIB, 2.0)
    with pytest.raises(ApiError, match="max_inflight_body_bytes"):
        second.grow_to(3 * MIB)
    first.release()
    first.release()
    second.release()
    assert (inflight.held_bytes, memory.held_mb) == (0, 0)
