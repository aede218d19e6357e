"""The HTTP request handler of the Vercel emulator."""

from __future__ import annotations

import logging
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from sandbox.vercel_emulator import VercelEmulator

logger = logging.getLogger("rollbot.sandbox.vercel")


class VercelHandler(BaseHTTPRequestHandler):
    """Hands every request to the bound :class:`VercelEmulator`."""

    emulator: VercelEmulator
    protocol_version = "HTTP/1.1"
    server_version = "VercelEmulator/1.0"
    timeout = 30
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.emulator.latency and not self.path.startswith("/_emulator/"):
            time.sleep(self.emulator.latency)
        delay = self.emulator.take_late(self.command, urlsplit(self.path).path)
        if delay:
            time.sleep(delay)  # the client may give up meanwhile; the call still takes effect below
        status, body, headers = self.emulator._handle(
            self.command, self.path, self.headers.get("Authorization"), raw)
        if status == 0:  # a scripted drop: the call took effect, the answer never comes
            self.close_connection = True
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (a scripted late answer)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)
