"""The Vercel adapter's connections, against a real HTTP server on loopback that plays the race a
keep-alive connection loses: the server closes an idle connection just as the client uses it
again, so a request sent on a reused connection is dropped without an answer. Reads share a pool
and are asked again; a change goes out on a connection of its own, so it is never dropped that
way and never made uncertain (a read-back window) for nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integrations.vercel import VercelClient


class _Racing(BaseHTTPRequestHandler):
    """Answers the first request on each connection; drops any later one, unanswered."""

    protocol_version = "HTTP/1.1"  # offers keep-alive
    lock = threading.Lock()
    seen: list[tuple[str, int]] = []  # (method, requests on its connection before it)
    answered = 0

    def setup(self) -> None:
        super().setup()
        self.before = 0

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with _Racing.lock:
            _Racing.seen.append((self.command, self.before))
        if self.before:
            self.close_connection = True  # closed under the client, who sent on it
            return
        self.before += 1
        body = json.dumps({"targets": {"production": {"id": "dpl_good"}}, "ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _answer  # noqa: N815 - the stdlib's names

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def vercel() -> Iterator[VercelClient]:
    _Racing.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Racing)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    client = VercelClient("token", base_url=f"http://127.0.0.1:{httpd.server_address[1]}", sleep=lambda _: None)
    yield client
    client.close()
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.reliability("fault", "Vercel: a kept-alive connection closed by the server as a read goes out on it")
def test_reads_share_a_connection_and_a_dropped_one_is_asked_again(vercel: VercelClient) -> None:
    assert vercel.alias_state("prj").production_id == "dpl_good"
    assert vercel.alias_state("prj").production_id == "dpl_good"  # dropped on the kept connection, asked again
    # The second read went out on the first one's connection (a pool), was dropped, then answered.
    assert _Racing.seen == [("GET", 0), ("GET", 1), ("GET", 0)]


@pytest.mark.reliability("fault", "Vercel: a kept-alive connection closed by the server as a change would go out on it")
def test_a_change_after_reads_goes_out_on_a_connection_of_its_own(vercel: VercelClient) -> None:
    vercel.alias_state("prj")
    vercel.rollback("prj", "dpl_good", "RB-1: test")  # would be dropped, and uncertain, on the kept connection
    vercel.send_json("PATCH", "/v1/edge-config/ecfg_1/items", {}, {"items": []})
    assert _Racing.seen == [("GET", 0), ("POST", 0), ("PATCH", 0)]  # each sent once, each first on its connection
