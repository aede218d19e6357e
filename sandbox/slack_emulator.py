"""A stateful emulator of the Slack Web API, served over real HTTP.

The emulator runs a stdlib ``ThreadingHTTPServer`` on a free loopback port in
a daemon thread, so ``slack_sdk.WebClient(base_url=emulator.url)`` (and Bolt
on top of it) talk to it unchanged.  Routes:

* ``POST/GET /api/<method>`` - Web API calls (form, JSON or query encoded),
  see :class:`sandbox.slack_api.SlackWebApi` for the implemented methods.
* ``POST /response/<token>`` - response URLs issued by :meth:`SlackEmulator.new_response_url`.
* ``GET /_emulator/state`` - JSON dump of messages, ephemerals and views.

Typical use::

    with SlackEmulator() as slack:
        client = WebClient(token="xoxb-sandbox", base_url=slack.url, proxy=None)
        client.chat_postMessage(channel="C1", text="hi")
        assert slack.messages("C1")[0]["text"] == "hi"
        assert slack.validation_errors == []
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

from sandbox.slack_api import ApiResponse, SlackWebApi
from sandbox.slack_state import Record, SlackState

log = logging.getLogger("rollbot.sandbox.slack")

_JSON_FIELDS = frozenset({"blocks", "attachments", "view", "metadata", "user_auth_blocks", "unfurls"})
"""Arguments whose form-encoded value is a JSON document."""


class SlackEmulator(SlackState):
    """A fake Slack workspace: Web API server plus the state behind it.

    All inspection and scripting methods are inherited from
    :class:`sandbox.slack_state.SlackState` (``messages``, ``thread``,
    ``message``, ``ephemerals``, ``views``, ``calls``, ``calls_to``,
    ``reset``, ``add_user``, ``add_usergroup``, ``archive_channel``,
    ``script_rate_limit``, ``script_fault``, ``new_trigger_id``, ``inject_message``,
    ``validation_errors``, ``response_posts``, ``trigger_expiry``).

    Args:
        bot_token: The only token accepted by the Web API.
        bot_user_id: User id of the bot; author of the messages it posts.
        bot_id: Bot id reported on messages and by ``auth.test``.
        team_id: Workspace id.
        host: Interface to bind (loopback by default).
        port: Port to bind; 0 picks a free one.
    """

    def __init__(
        self,
        bot_token: str = "xoxb-sandbox",
        *,
        bot_user_id: str = "UROLLBOT",
        bot_id: str = "BROLLBOT",
        team_id: str = "T0SANDBOX",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(bot_token=bot_token, bot_user_id=bot_user_id, bot_id=bot_id, team_id=team_id)
        self.host = host
        self.port = port
        self.api = SlackWebApi(self)
        self.latency = 0.0  # seconds every Web API and response_url call waits before it is served (a benchmark's)
        self._server: _EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------
    # Lifecycle

    def start(self) -> Self:
        """Bind the port and serve requests in a background daemon thread."""
        if self._server is not None:
            return self
        server = _EmulatorServer((self.host, self.port), self)
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-emulator", daemon=True
        )
        self._thread.start()
        log.info("Slack emulator listening on %s", self.root_url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        log.info("Slack emulator stopped")

    def attach_socket_mode(self, server: Any, app_token: str) -> None:
        """Answer ``apps.connections.open`` (with ``app_token``, an ``xapp-…`` token) with an
        address on ``server`` (sandbox.socket_mode.SocketModeServer)."""
        with self.lock:
            self.socket_mode, self.app_token = server, app_token

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the HTTP server is up."""
        return self._server is not None

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError("SlackEmulator is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Web API base URL (``.../api/``), as ``WebClient(base_url=...)`` expects."""
        return f"{self.root_url}/api/"

    # ------------------------------------------------------------------
    # Grants

    def new_response_url(
        self, channel: str | None = None, user: str | None = None, message_ts: str | None = None
    ) -> str:
        """Issue a response URL bound to a channel, a user and optionally a message.

        ``in_channel`` posts land in ``channel``; ephemeral posts (the default)
        are shown to ``user``; ``replace_original``/``delete_original`` act on
        ``message_ts`` (or, if unbound, the last message posted through the URL).
        """
        token = self.register_response_url(channel, user, message_ts)
        return f"{self.root_url}/response/{token}"


class _EmulatorServer(ThreadingHTTPServer):
    """HTTP server carrying a reference to its emulator."""

    # socketserver listens with a backlog of 5: a burst of concurrent clients (two web processes
    # answering 20 clicks, each asking auth.test on its first request) would see connections
    # reset, which Slack never does.
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: SlackEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator


class _Handler(BaseHTTPRequestHandler):
    """Decodes HTTP requests into Web API / response_url calls."""

    server: _EmulatorServer
    server_version = "SlackEmulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Route access logs to the sandbox logger at DEBUG instead of stderr."""
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        """Serve Web API GET calls and the state endpoint."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Serve Web API POST calls and response URL posts."""
        self._dispatch("POST")

    def _dispatch(self, verb: str) -> None:
        emulator = self.server.emulator
        parts = urlsplit(self.path)
        path = parts.path
        try:
            body = self._read_body()
            if emulator.latency and not path.startswith("/_emulator/"):
                time.sleep(emulator.latency)
            if path.startswith("/api/") and len(path) > len("/api/"):
                method = unquote(path[len("/api/") :]).strip("/")
                raw: dict[str, object] = dict(parse_qsl(parts.query, keep_blank_values=True))
                if verb == "POST":
                    raw.update(self._decode_body(body))
                args = {k: _maybe_json(k, v) for k, v in raw.items()}
                token = self._token(args)
                self._send(emulator.api.call(method, args, token))
            elif path.startswith("/response/") and verb == "POST":
                self._send(emulator.api.post_response(path[len("/response/") :], _loads(body)))
            elif path == "/_emulator/state" and verb == "GET":
                self._send(ApiResponse(200, emulator.snapshot()))
            else:
                self._send(ApiResponse(404, "not_found"))
        except Exception:  # pragma: no cover - keeps the server alive, loudly
            log.exception("Slack emulator failed on %s %s", verb, self.path)
            self._send(ApiResponse(500, {"ok": False, "error": "internal_error"}))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _decode_body(self, body: bytes) -> Record:
        """Decode a form-urlencoded or JSON request body into arguments."""
        if not body:
            return {}
        content_type = (self.headers.get("Content-Type") or "").lower()
        if "json" in content_type:
            decoded = _loads(body)
            return decoded if isinstance(decoded, dict) else {}
        if "x-www-form-urlencoded" in content_type or not content_type:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        return {}

    def _token(self, args: Record) -> str | None:
        """Bearer token from the Authorization header, else the ``token`` argument."""
        token = args.pop("token", None)
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[len("bearer ") :].strip() or None
        return str(token) if token else None

    def _send(self, response: ApiResponse) -> None:
        if response.delay:
            time.sleep(response.delay)
        if response.drop:  # applied, but the client never hears so
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(response.body, str):
            payload = response.body.encode("utf-8")
            content_type = "text/plain; charset=utf-8"
        else:
            payload = json.dumps(response.body).encode("utf-8")
            content_type = "application/json; charset=utf-8"
        self.send_response(response.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _loads(body: bytes) -> object:
    """Parse a JSON body; ``None`` when it is not valid JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _maybe_json(key: str, value: object) -> object:
    """Decode JSON-string values of structured arguments such as ``blocks``/``view``.

    A value that is not valid JSON is kept as the raw string, so validation
    reports it (e.g. "blocks must be an array").
    """
    if key not in _JSON_FIELDS or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
