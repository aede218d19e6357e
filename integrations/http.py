"""The one way adapters talk HTTP: a client factory and two ways to call.

* ``read``: an idempotent call (a GET), retried a bounded number of times on 429, 5xx, timeouts,
  refused connections and dropped ones (a pooled keep-alive connection the server closed just as
  it was used again shows as a disconnect or a reset), waiting what ``Retry-After`` / ``X-RateLimit-Reset`` say (capped) or
  an exponential backoff with jitter (0.25 s, 0.5 s, 1 s, ...). Retries are tenacity's.
* ``send_once``: a call that changes something. Never retried here: the caller decides, after
  reading the provider back (an uncertain outcome is never resent blindly). It goes out on a
  kept-alive connection when the pool has one (the reads before it used it a moment ago): a new
  one would cost two round trips (TCP, TLS) on the way to the change. httpx drops a connection
  idle for over 5 s before it is used again; a server that closes one just as a change goes out
  on it makes the outcome uncertain, which the caller reads back.

Both return the final ``httpx.Response`` or raise ``httpx.HTTPError``; turning those into
``ProviderError`` is each adapter's job, since only it knows the provider's error body.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

DEFAULT_TIMEOUT = 10.0


def client(base_url: str = "", *, headers: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
           transport: httpx.BaseTransport | None = None, follow_redirects: bool = False) -> httpx.Client:
    """An httpx client with Rollbot's defaults: explicit timeouts, no proxies from the environment
    (every address we call is configured), a User-Agent."""
    return httpx.Client(base_url=base_url.rstrip("/"), headers={"User-Agent": "rollbot", **(headers or {})},
                        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), trust_env=False,
                        transport=transport, follow_redirects=follow_redirects)


def fresh_transport() -> httpx.HTTPTransport:
    """A transport that keeps no connection: every request opens its own, so none has gone stale
    (health checks: a user's first request after a quiet spell opens one too)."""
    return httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))


class _Again(Exception):
    """A response worth asking again for (429 or 5xx)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retryable(error: BaseException) -> bool:
    return isinstance(error, (_Again, httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` seconds or ``X-RateLimit-Reset`` epoch)."""
    header = response.headers.get("Retry-After")
    if header and header.strip().isdigit():
        return float(header)
    reset = response.headers.get("X-RateLimit-Reset")
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - time.time())
    return None


def read(http: httpx.Client, method: str, url: str, *, params: Mapping[str, Any] | None = None,
         attempts: int = 4, max_wait: float = 20.0, sleep: Callable[[float], None] = time.sleep) -> httpx.Response:
    """An idempotent call with bounded retries. Returns the last response (a 429 or 5xx after the
    last attempt, too); raises the last timeout or connection error."""
    backoff = wait_exponential(multiplier=0.25, max=max_wait) + wait_random(0, 0.2)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Again):
            asked = retry_after(error.response)
            if asked is not None:
                return min(asked, max_wait)
        return float(backoff(state))

    def call() -> httpx.Response:
        response = http.request(method, url, params=params)
        if response.status_code == 429 or response.status_code >= 500:
            raise _Again(response)
        return response

    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait, retry=retry_if_exception(_retryable),
                        sleep=sleep, reraise=True)
    try:
        return retrying(call)
    except _Again as last:
        return last.response


def send_once(http: httpx.Client, method: str, url: str, *, params: Mapping[str, Any] | None = None,
              json: Any = None) -> httpx.Response:
    """A call that changes something: sent exactly once (see the module docstring)."""
    return http.request(method, url, params=params, json=json)


Report = Callable[[str, str, str, float], None]
"""``(method, path template, status, seconds)`` for one HTTP exchange (``TimedTransport``)."""


class TimedTransport(httpx.BaseTransport):
    """Wraps a transport and reports every exchange, retries included: ``GET /v6/deployments``
    and the like (ids in the path become ``{id}``), its HTTP status (``timeout`` or ``transport``
    when none came) and the seconds until its headers arrived."""

    def __init__(self, report: Report, inner: httpx.BaseTransport | None = None) -> None:
        self._report = report
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        method, path = request.method, path_template(request.url.path)
        try:
            response = self._inner.handle_request(request)
        except httpx.TimeoutException:
            self._report(method, path, "timeout", time.perf_counter() - started)
            raise
        except httpx.HTTPError:
            self._report(method, path, "transport", time.perf_counter() - started)
            raise
        self._report(method, path, str(response.status_code), time.perf_counter() - started)
        return response

    def close(self) -> None:
        self._inner.close()


_WORD = re.compile(r"^(v\d+|[a-z][a-z-]{0,30})$")


def path_template(path: str) -> str:
    """``/v1/projects/prj_1/rollback/dpl_2`` -> ``/v1/projects/{id}/rollback/{id}``: version and
    plain-word segments stay, anything with a digit, an underscore or an upper-case letter is an id."""
    return "/".join(part if not part or _WORD.match(part) else "{id}" for part in path.split("/"))[:120]
