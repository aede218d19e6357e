"""Slack's Socket Mode end, on loopback: the WebSocket Slack holds open to an app, for
`rollbot socket` to connect to, and the Slack user's side of it for the tests.

The protocol, as Slack documents it (Socket Mode, "Using Socket Mode"):

* The app calls ``apps.connections.open`` with its app-level token (``xapp-…``); the answer's
  ``url`` is a WebSocket address with a one-time ticket (here ``ws://127.0.0.1:<port>/link/?ticket=…``,
  handed out by the Slack emulator, ``SlackEmulator.attach_socket_mode``).
* On connecting, the app gets ``{"type": "hello", "num_connections": n, "connection_info":
  {"app_id": …}, "debug_info": {…}}``.
* Every delivery is an envelope: ``{"envelope_id", "type": "slash_commands" | "interactive" |
  "events_api", "payload", "accepts_response_payload", "retry_attempt", "retry_reason"}``.
* The app acknowledges with ``{"envelope_id", "payload"?}``; the payload answers a command
  (its ephemeral reply) or a modal (``response_action``).
* Slack refreshes a connection now and then: ``{"type": "disconnect", "reason":
  "refresh_requested"}``, then it closes the socket, and the app opens a new one.

    server = SocketModeServer().start()
    slack.attach_socket_mode(server, app_token)
    envelope = server.deliver("slash_commands", payload)
    server.ack(envelope)          # the app's answer: {"envelope_id": …, "payload": {…}}
    server.refresh()              # disconnect: the app must come back on a new ticket
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any, Self
from urllib.parse import parse_qs, urlparse

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

log = logging.getLogger("sandbox.socket_mode")
Record = dict[str, Any]
KINDS = ("slash_commands", "interactive", "events_api")


class SocketModeServer:
    def __init__(self, app_id: str = "A0ROLLBOT") -> None:
        self.app_id = app_id
        self._changed = threading.Condition()
        self._tickets: set[str] = set()
        self._open: list[ServerConnection] = []
        self._acks: dict[str, Record] = {}
        self.handshakes = 0  # connections accepted, reconnections included
        self.refused = 0  # connections with no valid ticket
        self._server: Server | None = None

    def start(self) -> Self:
        self._server = serve(self._session, "127.0.0.1", 0)
        self.port = int(self._server.socket.getsockname()[1])
        threading.Thread(target=self._server.serve_forever, name="socket-mode", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    # -- what apps.connections.open hands out ---------------------------------------------------

    def new_url(self) -> str:
        """A WebSocket address with a fresh one-time ticket."""
        ticket = uuid.uuid4().hex
        with self._changed:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- Slack's side ---------------------------------------------------------------------------

    def deliver(self, kind: str, payload: Record, *, envelope_id: str | None = None, retry_attempt: int = 0,
                retry_reason: str = "", timeout: float = 10) -> str:
        """Send an envelope on the newest open connection (waiting for one); its id."""
        if kind not in KINDS:
            raise ValueError(f"not an envelope type: {kind}")
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api", "retry_attempt": retry_attempt,
                    "retry_reason": retry_reason}
        self._connection(timeout).send(json.dumps(envelope))
        return envelope_id

    def ack(self, envelope_id: str, timeout: float = 10) -> Record:
        """The app's acknowledgement of an envelope (waiting for it)."""
        with self._changed:
            if not self._changed.wait_for(lambda: envelope_id in self._acks, timeout):
                raise AssertionError(f"envelope {envelope_id} was not acknowledged within {timeout:.0f} s")
            return self._acks[envelope_id]

    def acked(self, envelope_id: str) -> bool:
        with self._changed:
            return envelope_id in self._acks

    def refresh(self, reason: str = "refresh_requested") -> None:
        """What Slack does every few hours: say ``disconnect``, then close every open connection."""
        with self._changed:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.send(json.dumps({"type": "disconnect", "reason": reason,
                                            "debug_info": {"host": "sandbox-socket-mode"}}))
                time.sleep(0.1)  # Slack closes after saying so
                connection.close()
            except ConnectionClosed:
                pass

    def wait_handshakes(self, count: int, timeout: float = 15) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.handshakes >= count and self._open, timeout):
                raise AssertionError(f"{self.handshakes} connection(s), not {count}, within {timeout:.0f} s")

    # -- the app's side, one connection ---------------------------------------------------------

    def _connection(self, timeout: float) -> ServerConnection:
        with self._changed:
            if not self._changed.wait_for(lambda: bool(self._open), timeout):
                raise AssertionError(f"no app connected within {timeout:.0f} s")
            return self._open[-1]

    def _session(self, connection: ServerConnection) -> None:
        query = parse_qs(urlparse(connection.request.path if connection.request else "").query)
        ticket = (query.get("ticket") or [""])[0]
        with self._changed:
            valid = ticket in self._tickets
            self._tickets.discard(ticket)  # good once
            if not valid:
                self.refused += 1
        if not valid:
            connection.close(code=1008, reason="invalid ticket")
            return
        with self._changed:
            self._open.append(connection)
            self.handshakes += 1
            count = len(self._open)
        connection.send(json.dumps({"type": "hello", "num_connections": count,
                                    "debug_info": {"host": "sandbox-socket-mode", "approximate_connection_time": 18060},
                                    "connection_info": {"app_id": self.app_id}}))
        with self._changed:
            self._changed.notify_all()
        try:
            for message in connection:
                data = json.loads(message)
                if isinstance(data, dict) and isinstance(data.get("envelope_id"), str):
                    with self._changed:
                        self._acks[data["envelope_id"]] = data
                        self._changed.notify_all()
        except (ConnectionClosed, ValueError) as error:
            log.debug("socket mode connection ended: %s", type(error).__name__)
        finally:
            with self._changed:
                if connection in self._open:
                    self._open.remove(connection)
                self._changed.notify_all()


class SocketModeUser:
    """A Slack user whose actions reach the app over Socket Mode: the same payloads as over HTTP
    (``sandbox.slack_client.SignedSlackClient`` builds them), in envelopes, answered by acks. A
    command's ack payload is shown as Slack shows it (an ephemeral, in the emulator)."""

    def __init__(self, server: SocketModeServer, payloads: Any) -> None:
        self.server = server
        self.payloads = payloads  # a SignedSlackClient: command_fields, click_payload, view_payload
        self.sent: list[tuple[str, Record]] = []

    def command(self, user_id: str, text: str, *, channel_id: str) -> Record:
        fields = self.payloads.command_fields(user_id, text, channel_id=channel_id)
        ack = self._exchange("slash_commands", fields)
        if ack.get("payload"):
            self.payloads.emulator.api.deliver_ack(channel_id, user_id, ack["payload"])
        return ack

    def click(self, user_id: str, *, channel: str, message_ts: str, action_id: str) -> Record:
        return self._exchange("interactive", self.payloads.click_payload(
            user_id, channel=channel, message_ts=message_ts, action_id=action_id))

    def submit_view(self, user_id: str, view_id: str, values: Record) -> Record:
        return self._exchange("interactive", self.payloads.view_payload(user_id, view_id, values))

    def again(self, retry_reason: str = "timeout") -> Record:
        """Slack's redelivery of the last envelope (a new envelope, ``retry_attempt`` 1)."""
        kind, payload = self.sent[-1]
        return self.server.ack(self.server.deliver(kind, payload, retry_attempt=1, retry_reason=retry_reason))

    def _exchange(self, kind: str, payload: Record) -> Record:
        self.sent.append((kind, payload))
        return self.server.ack(self.server.deliver(kind, payload))
