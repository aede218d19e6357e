"""The WSGI entry: Bolt at `POST /slack/events`, plus `/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot import metrics
from bot.app import create_app
from bot.bootstrap import Container
from bot.metrics import Counters
from handlers.model import Status

log = logging.getLogger("rollbot.web")

StartResponse = Callable[..., Any]


class RollbotWSGI:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.slack = SlackRequestHandler(create_app(container), path="/slack/events")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events":
            return self.slack(environ, start_response)
        if method == "GET" and path == "/healthz":
            return _json(start_response, 200, {"status": "ok"})
        if method == "GET" and path == "/readyz":
            return self._ready(start_response)
        if method == "GET" and path == "/metrics":
            body = metrics.render(Counters(self.container.redis).snapshot(), self._gauges()).encode()
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4"), ("Content-Length", str(len(body)))])
            return [body]
        return _json(start_response, 404, {"error": "not found"})

    def _ready(self, start_response: StartResponse) -> Iterable[bytes]:
        checks = {}
        for name, ping in (("postgres", self.container.store.ping), ("redis", self.container.redis.ping)):
            try:
                checks[name] = "ok" if ping() else "down"
            except Exception as error:  # readiness reports, it never raises
                checks[name] = f"down ({type(error).__name__})"
        ok = all(v == "ok" for v in checks.values())
        return _json(start_response, 200 if ok else 503, {"status": "ready" if ok else "not ready", **checks})

    def _gauges(self) -> dict[str, float]:
        try:
            counts = self.container.store.status_counts()
        except Exception:  # metrics never fail the scrape
            return {}
        gauges = {f'rollbot_incidents{{status="{status.value}"}}': float(counts.get(status.value, 0))
                  for status in Status}
        gauges["rollbot_open_incidents"] = float(sum(counts.get(s.value, 0) for s in Status if s.is_open))
        gauges["rollbot_dead_jobs"] = float(counts.get("dead_jobs", 0))  # alert on > 0
        return gauges


def _json(start_response: StartResponse, status: int, data: dict[str, Any]) -> Iterable[bytes]:
    body = json.dumps(data).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
