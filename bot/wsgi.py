"""The WSGI entry: Bolt at `POST /slack/events`, plus `/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse
from slack_bolt.context import BoltContext
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_context

from bot import metrics, request_scope
from bot.app import create_app
from bot.bootstrap import Container
from bot.delivery import FIRST_DELIVERY
from bot.edge import MAX_BODY, Admitted, Refusal, SlackGate
from bot.replay import ReplayFilter
from bot.settings import secret
from integrations.pg_replay import ReplayLedger

log = logging.getLogger("rollbot.web")

StartResponse = Callable[..., Any]


class RollbotWSGI:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.bolt = create_app(container)
        if container.replay is None:
            container.replay = ReplayLedger(container.store.pool)
        self.words = request_scope.command_words(container.services.kinds)
        self.gate = SlackGate(secret(container.settings.slack_signing_secret),
                              ReplayFilter(container.redis, container.replay).admit)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events":
            return self._slack(environ, start_response)
        if method == "GET" and path == "/healthz":
            return _json(start_response, 200, {"status": "ok"})
        if method == "GET" and path == "/readyz":
            return self._ready(start_response)
        if method == "GET" and path == "/metrics":
            body, content_type = metrics.scrape(lambda: metrics.state_gauges(self.container.services))
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body]
        return _json(start_response, 404, {"error": "not found"})

    def _slack(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # Each request in a context of its own: what it binds for the logs (its user, its
        # incident) and for the metrics (when it arrived) never leaks into the thread's next one.
        return contextvars.Context().run(self._slack_request, environ, start_response)

    def _slack_request(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The gate (bot.edge) first: only signed, well-formed, first deliveries reach Bolt."""
        if environ.get("REQUEST_METHOD") != "POST":
            return _json(start_response, 405, {"error": "POST only"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # an unsigned-looking request: the signature check below refuses it
        if length > MAX_BODY:
            return _json(start_response, 413, {"error": "body too large"})
        received = time.perf_counter()
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        admitted = self.gate.check(environ, body)
        if isinstance(admitted, Refusal):
            if admitted.status == 200:
                start_response("200 OK", [("Content-Length", "0")])
                return [b""]
            return _json(start_response, admitted.status, {"error": admitted.reason})
        scope = request_scope.begin(admitted.body, self.words, received)
        try:
            response = self.bolt.dispatch(_bolt_request(environ, body, admitted))
        except Exception as error:  # Bolt could not read it (listener errors never get here: see bot.app)
            log.warning("refused a signed request Bolt could not read: %s: %s", type(error).__name__,
                        str(error)[:200])
            return _json(start_response, 400, {"error": "the payload does not have the shape Slack sends"})
        answer = WsgiHttpResponse(status=response.status, headers=response.headers, body=response.body)
        start_response(answer.status, answer.get_headers())
        scope.acked()
        return answer.get_body()

    def _ready(self, start_response: StartResponse) -> Iterable[bytes]:
        checks = {}
        for name, ping in (("postgres", self.container.store.ping), ("redis", self.container.redis.ping)):
            try:
                checks[name] = "ok" if ping() else "down"
            except Exception as error:  # readiness reports, it never raises
                checks[name] = f"down ({type(error).__name__})"
        ok = all(v == "ok" for v in checks.values())
        return _json(start_response, 200 if ok else 503, {"status": "ready" if ok else "not ready", **checks})



def _bolt_request(environ: dict[str, Any], raw: bytes, admitted: Admitted) -> BoltRequest:
    """What Bolt's WSGI adapter would build, with the body the gate parsed already: a large
    interactive payload is URL-decoded and read as JSON once, not twice. (Bolt would also read a
    slash command whose text says "payload" as an empty body; the gate reads it as it is.) The
    gate's answer for the click's or event's delivery key goes in the context (bot.delivery)."""
    http = WsgiHttpRequest(environ)
    request = BoltRequest(body="", query=http.query_string, headers=http.get_headers())
    request.raw_body = raw.decode("utf-8")  # the gate checked it is UTF-8
    request.body = admitted.body
    context = BoltContext({} if admitted.first_delivery is None else {FIRST_DELIVERY: admitted.first_delivery})
    request.context = build_context(context, admitted.body)
    return request


def _json(start_response: StartResponse, status: int, data: dict[str, Any]) -> Iterable[bytes]:
    body = json.dumps(data).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
              413: "Content Too Large", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

