"""Health checks over HTTP: each URL must answer 2xx within the timeout.

Each check opens a connection of its own, as a user's first request would, and asks the server to
close it after answering: a pooled keep-alive connection the server closed while it sat idle
(between a rollback and its first reminder) would otherwise fail a healthy service's check, and
say a rollback did not help when it did."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from handlers.model import HealthResult
from integrations import http


class HttpHealthChecker:
    def __init__(self, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        # The server closes it after answering, rather than hold it open for a next request.
        self._client = http.client(timeout=timeout, transport=transport or http.fresh_transport(), follow_redirects=True,
                                   headers={"User-Agent": "rollbot-health-check", "Connection": "close"})

    def check(self, urls: Sequence[str]) -> list[HealthResult]:
        if not urls:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
            return list(pool.map(self._one, urls))

    def _one(self, url: str) -> HealthResult:
        started = time.monotonic()
        try:
            response = self._client.get(url)
        except httpx.HTTPError as error:
            return HealthResult(url, False, None, _ms(started), type(error).__name__)
        ok = 200 <= response.status_code < 300
        return HealthResult(url, ok, response.status_code, _ms(started), None if ok else f"HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
