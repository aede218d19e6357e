"""`rollbot socket`: Bolt's Socket Mode handler, giving each envelope what the HTTP edge
(bot.wsgi) gives each request: a context of its own, with its user and kind bound for the logs,
and its ack latency measured (``rollbot_slack_ack_seconds``).

There is no signature to check over a socket Rollbot opened itself with its app-level token;
a click or an event Slack delivers again (a new envelope after a lost ack or a reconnection) is
caught by its delivery key in the listener (bot.delivery), as over HTTP."""

from __future__ import annotations

import contextvars
import time

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from structlog.contextvars import bind_contextvars

from bot import metrics
from bot.edge import sender


class RollbotSocketMode(SocketModeHandler):
    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:
        contextvars.Context().run(self._handle, client, req)

    def _handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:
        received = time.perf_counter()
        body = req.payload if isinstance(req.payload, dict) else {}
        kind = metrics.request_kind(body)
        metrics.RECEIVED.set(received)
        user = sender(body)
        bind_contextvars(request=kind, transport="socket_mode", **({"user": user} if user else {}))
        super().handle(client, req)  # type: ignore[arg-type]
        metrics.ACK_SECONDS.labels(kind=kind).observe(time.perf_counter() - received)
