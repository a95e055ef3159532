"""How the harness fails when something around it fails: the report child that never ends (the verdict is still
printed), a service answering 500 to the catalog read (not "no catalog")."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.unpatched import locust_unpatched

with locust_unpatched():  # Locust's classes without a gevent-patched pytest process
    from harness import run as run_module
    from harness.rundir import RunDirectory
    from harness.users import catalog_ids


@pytest.fixture
def answering() -> Iterator[object]:
    """``answering(status, body)``: a loopback HTTP server answering every GET with ``status`` and ``body``."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, body: bytes) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_500_to_the_catalog_read_is_not_called_a_missing_catalog(answering) -> None:  # type: ignore[no-untyped-def]
    host = answering(500, b'{"error": "internal", "detail": "store unreadable"}')
    with pytest.raises(RuntimeError) as failed:
        catalog_ids(host)
    message = str(failed.value)
    assert "answered 500" in message and "store unreadable" in message
    assert "no catalog" not in message and "--load-catalog" not in message


def test_a_404_to_the_catalog_read_asks_for_a_catalog(answering) -> None:  # type: ignore[no-untyped-def]
    host = answering(404, b'{"error": "not_found", "detail": "no feature tmdb/movie_features"}')
    with pytest.raises(RuntimeError, match="answered 404: the service has no catalog; load one with --load-catalog"):
        catalog_ids(host)


def test_a_report_child_that_times_out_is_logged_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """build_report(in_child=True) let subprocess.TimeoutExpired escape: the web UI run's verdict was never printed."""
    monkeypatch.setattr(run_module, "REPORT_TIMEOUT_S", 0.01)  # the child cannot even start its interpreter by then
    run = SimpleNamespace(run_dir=RunDirectory(tmp_path, "scenario"), report_summary=None, report=None)
    with caplog.at_level(logging.ERROR, logger="featureload"):
        run_module.RunContext.build_report(run, in_child=True)  # type: ignore[arg-type]
    assert run.report_summary is None
    assert any("not done after 0.01 s" in r.getMessage() for r in caplog.records), caplog.text
