"""service.launcher: a port another process takes between the free-port pick and the service's bind."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import service.launcher as launcher
from service.launcher import PortTakenError, start_service


class _Impostor(http.server.BaseHTTPRequestHandler):
    """Answers /ready and /health as our service would, from a pid that is not the service's."""

    def do_GET(self) -> None:
        body = json.dumps({"pid": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def taken_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_given_port_another_process_answers_on_is_refused_with_its_pid(taken_port: int, tmp_path: Path) -> None:
    with pytest.raises(PortTakenError, match=rf"another process \(pid 1\) already answers on .*:{taken_port}"):
        start_service({}, store_path=tmp_path / "store", port=taken_port, ready_timeout_s=30.0)


def test_a_picked_port_taken_meanwhile_is_replaced_by_another(
    taken_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race seen under a full suite: the port picked free was bound by another process first, which answered
    the readiness poll before the service's own bind failed."""
    picks = iter([taken_port])
    real_free_port = launcher.free_port
    monkeypatch.setattr(launcher, "free_port", lambda host="127.0.0.1": next(picks, None) or real_free_port(host))
    service = start_service({}, store_path=tmp_path / "store", ready_timeout_s=30.0)
    try:
        assert service.port != taken_port
        assert json.loads(launcher._get(service, "/health")[1])["pid"] == service.pid
    finally:
        service.stop(timeout_s=10.0)
