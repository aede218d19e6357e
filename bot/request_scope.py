"""What every Slack request gets at the edge, over HTTP (bot.wsgi) and over Socket Mode
(bot.socket_mode) alike: a context of its own (what it binds for the logs and the metrics never
leaks into the thread's next request), its kind and user bound for the logs, when it arrived
(``metrics.RECEIVED``, for ``rollbot_slack_request_seconds``), and its ack measured
(``rollbot_slack_ack_seconds``). Run the request's handling inside ``contextvars.Context().run``
and call ``begin`` first there."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from structlog.contextvars import bind_contextvars

from bot import metrics
from bot.edge import sender
from handlers.kind import RollbackKind


@dataclass(frozen=True)
class Scope:
    kind: str
    received: float

    def acked(self) -> None:
        metrics.ACK_SECONDS.labels(kind=self.kind).observe(time.perf_counter() - self.received)


def begin(body: dict[str, Any], words: Collection[str], received: float | None = None, **fields: str) -> Scope:
    """Bind this request's kind (``words``: the ``/rollback`` words that may be labels) and user
    in the current context; ``fields`` are bound too (``transport="socket_mode"``)."""
    metrics.SLACK_REQUESTS.labels(kind=str(body.get("type") or body.get("command") or "other")[:40]).inc()
    scope = Scope(metrics.request_kind(body, words), received if received is not None else time.perf_counter())
    metrics.RECEIVED.set(scope.received)
    user = sender(body)
    bind_contextvars(request=scope.kind, **({"user": user} if user else {}), **fields)
    return scope


def command_words(kinds: Iterable[RollbackKind]) -> frozenset[str]:
    """The ``/rollback`` words that name a kind (``code``, ``db``, ``code+env``): these, and the
    fixed commands, may be a request's label; nothing a user types otherwise."""
    return frozenset(word for kind in kinds for word in (kind.name, *kind.words))
