"""Health checks against a real HTTP server on loopback: each check on a connection of its own,
so a kept-alive connection the server closed while idle never fails a healthy service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integrations.health import HttpHealthChecker


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # offers keep-alive
    connections: list[int] = []
    asked_to_close: list[bool] = []
    status = 200

    def setup(self) -> None:
        super().setup()
        _Handler.connections.append(id(self.connection))

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        _Handler.asked_to_close.append(self.headers.get("Connection", "").lower() == "close")
        body = b"ok"
        self.send_response(_Handler.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.connections, _Handler.asked_to_close, _Handler.status = [], [], 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/healthz"
    httpd.shutdown()
    httpd.server_close()


def test_each_check_opens_a_connection_of_its_own(server: str) -> None:
    checker = HttpHealthChecker()
    try:
        results = [result for _ in range(3) for result in checker.check([server])]
    finally:
        checker.close()
    assert [r.ok for r in results] == [True, True, True]
    assert len(_Handler.connections) == 3  # none was kept for the next check to find closed
    assert _Handler.asked_to_close == [True] * 3  # nor kept open by the server, waiting for a next request


def test_a_server_error_is_unhealthy_with_its_status(server: str) -> None:
    _Handler.status = 503
    checker = HttpHealthChecker()
    try:
        [result] = checker.check([server])
    finally:
        checker.close()
    assert not result.ok and result.status == 503 and result.error == "HTTP 503"

