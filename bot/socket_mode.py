"""`rollbot socket`: Bolt's Socket Mode handler, giving each envelope what the HTTP edge
(bot.wsgi) gives each request: a context of its own, with its user and kind bound for the logs,
and its ack latency measured (``rollbot_slack_ack_seconds``).

There is no signature to check over a socket Rollbot opened itself with its app-level token;
a click or an event Slack delivers again (a new envelope after a lost ack or a reconnection) is
caught by its delivery key in the listener (bot.delivery), as over HTTP."""

from __future__ import annotations

import contextvars

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot import request_scope


class RollbotSocketMode(SocketModeHandler):
    words: frozenset[str] = frozenset()  # the kinds' words (bot.request_scope.command_words)

    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:
        contextvars.Context().run(self._handle, client, req)

    def _handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:
        scope = request_scope.begin(req.payload if isinstance(req.payload, dict) else {}, self.words,
                                    transport="socket_mode")
        super().handle(client, req)  # type: ignore[arg-type]
        scope.acked()
