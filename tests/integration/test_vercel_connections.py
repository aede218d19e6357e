"""The Vercel adapter's connections, against a real HTTP server on loopback. Reads and changes
share one pool of kept-alive connections, so a change goes out on the connection the reads
before it used a moment ago (a new one would cost TCP and TLS round trips on the way to the
change). The server can play the race a kept-alive connection loses: it closes an idle
connection just as the client uses it again, so a request on a reused connection is dropped
unanswered. A read is then asked again; a change is uncertain, sent once, and left to the
caller's read-back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from handlers.ports import ProviderError
from integrations.vercel import VercelClient


class _Server(BaseHTTPRequestHandler):
    """Answers every request, or (``drop_reused``) only the first on each connection."""

    protocol_version = "HTTP/1.1"  # offers keep-alive
    lock = threading.Lock()
    seen: list[tuple[str, int]] = []  # (method, requests on its connection before it)
    drop_reused = False

    def setup(self) -> None:
        super().setup()
        self.before = 0

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with _Server.lock:
            _Server.seen.append((self.command, self.before))
        if self.before and _Server.drop_reused:
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
    _Server.seen, _Server.drop_reused = [], False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    client = VercelClient("token", base_url=f"http://127.0.0.1:{httpd.server_address[1]}", sleep=lambda _: None)
    yield client
    client.close()
    httpd.shutdown()
    httpd.server_close()


def test_a_change_goes_out_on_the_connection_the_reads_before_it_used(vercel: VercelClient) -> None:
    vercel.alias_state("prj")
    vercel.rollback("prj", "dpl_good", "RB-1: test")
    vercel.send_json("PATCH", "/v1/edge-config/ecfg_1/items", {}, {"items": []})
    assert _Server.seen == [("GET", 0), ("POST", 1), ("PATCH", 2)]  # one connection, no new handshake


@pytest.mark.reliability("fault", "Vercel: a kept-alive connection closed by the server as a read goes out on it")
def test_a_read_dropped_on_a_kept_connection_is_asked_again(vercel: VercelClient) -> None:
    _Server.drop_reused = True
    assert vercel.alias_state("prj").production_id == "dpl_good"
    assert vercel.alias_state("prj").production_id == "dpl_good"
    assert _Server.seen == [("GET", 0), ("GET", 1), ("GET", 0)]  # dropped on the kept connection, asked again


@pytest.mark.reliability("fault", "Vercel: a kept-alive connection closed by the server as a change goes out on it")
def test_a_change_dropped_on_a_kept_connection_is_uncertain_and_sent_once(vercel: VercelClient) -> None:
    _Server.drop_reused = True
    vercel.alias_state("prj")
    with pytest.raises(ProviderError) as raised:
        vercel.rollback("prj", "dpl_good", "RB-1: test")
    assert raised.value.uncertain  # it may have arrived: the caller reads Vercel back, never resends blindly
    assert _Server.seen == [("GET", 0), ("POST", 1)]
