"""Vercel REST API adapter for code rollbacks (implements ``handlers.code.CodeProvider``).

Reads go through ``integrations.http.read`` (bounded retries on 429, 5xx and timeouts, honouring
``Retry-After`` / ``X-RateLimit-Reset``). The rollback call is not idempotent: it is sent exactly
once per call (``http.send_once``). A 429 or a refused connection comes back as a definite
ProviderError (with ``retry_after``) for the caller to send again under its lease; after a 5xx, a
timeout or a broken connection the error is ``uncertain``, so the caller reads Vercel back first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from handlers.code import AliasState, Deployment
from handlers.ports import ProviderError
from integrations import http

log = logging.getLogger("rollbot.vercel")


class VercelClient:
    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://api.vercel.com",
        team_id: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 4,
        max_wait: float = 20.0,
        transport: httpx.BaseTransport | None = None,
        report: http.Report | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``report`` hears of every exchange (``http.TimedTransport``); ``transport`` is for tests.
        Reads and changes share one pool of kept-alive connections: a change goes out on the one
        the reads before it used a moment ago, not on a new one (TCP and TLS, two round trips
        more between the click and the change)."""
        inner = transport or httpx.HTTPTransport()
        self._client = http.client(base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout,
                                   transport=http.TimedTransport(report, inner) if report else inner)
        self._team_id = team_id
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    # -- CodeProvider ------------------------------------------------------------------------

    def production_deployments(self, project: str, limit: int = 20) -> list[Deployment]:
        data = self._get("/v7/deployments", {"projectId": project, "target": "production", "state": "READY",
                                              "limit": limit})
        return [_deployment(d) for d in data.get("deployments", [])]

    def deployment(self, uid: str) -> Deployment:
        return _deployment(self._get(f"/v13/deployments/{uid}", {}))

    def alias_state(self, project: str) -> AliasState:
        data = self._get(f"/v9/projects/{project}", {})
        production = ((data.get("targets") or {}).get("production") or {}).get("id")
        job = data.get("lastAliasRequest") or {}
        requested = job.get("requestedAt")
        return AliasState(production, job.get("jobStatus"), job.get("toDeploymentId"),
                          int(requested) if isinstance(requested, (int, float)) else None)

    def rollback(self, project: str, deployment_uid: str, description: str) -> None:
        self._send("POST", f"/v1/projects/{project}/rollback/{deployment_uid}", {"description": description})

    # -- transport ---------------------------------------------------------------------------

    def _query(self, params: dict[str, Any]) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        if self._team_id:
            query["teamId"] = self._team_id
        return query

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        data = self.get_json(path, params)
        return data if isinstance(data, dict) else {}

    def get_json(self, path: str, params: dict[str, Any]) -> Any:
        """A read: retried (bounded) on 429, 5xx, timeouts and refused connections."""
        try:
            response = http.read(self._client, "GET", path, params=self._query(params), attempts=self._max_attempts,
                                 max_wait=self._max_wait, sleep=self._sleep)
        except httpx.TimeoutException:
            raise ProviderError(f"Vercel timed out on GET {path}", code="timeout") from None
        except httpx.ConnectError:
            raise ProviderError("cannot reach Vercel (connection refused)", code="unreachable") from None
        except httpx.HTTPError as error:
            raise ProviderError(f"lost the connection to Vercel ({type(error).__name__})", code="unreachable") from None
        return self._answer(response, uncertain_5xx=False)

    def _send(self, method: str, path: str, params: dict[str, Any]) -> Any:
        return self.send_json(method, path, params)

    def send_json(self, method: str, path: str, params: dict[str, Any], body: Any = None) -> Any:
        """A change: sent once. Whether a failure may have taken effect is in ``uncertain``."""
        try:
            response = http.send_once(self._client, method, path, params=self._query(params), json=body)
        except (httpx.ConnectTimeout, httpx.PoolTimeout):  # no connection was had: nothing was sent
            raise ProviderError("cannot reach Vercel (no connection in time)", code="unreachable") from None
        except httpx.TimeoutException:
            raise ProviderError(f"Vercel did not answer {method} {path} in time", code="timeout",
                                uncertain=True) from None
        except httpx.ConnectError:  # nothing was sent
            raise ProviderError("cannot reach Vercel (connection refused)", code="unreachable") from None
        except httpx.HTTPError as error:  # the request may have reached Vercel; the answer did not come
            raise ProviderError(f"lost the connection to Vercel ({type(error).__name__})", code="unreachable",
                                uncertain=True) from None
        return self._answer(response, uncertain_5xx=True)

    def _answer(self, response: httpx.Response, *, uncertain_5xx: bool) -> Any:
        if response.status_code == 429:
            wait = min(http.retry_after(response) or 1.0, self._max_wait)
            raise ProviderError(_message(response), code="rate_limited", status=429, retry_after=wait)
        if response.status_code >= 500:
            raise ProviderError(_message(response), code="server_error", status=response.status_code,
                                uncertain=uncertain_5xx)
        if response.status_code >= 400:
            raise ProviderError(_message(response), code=_error(response).get("code"), status=response.status_code)
        try:
            return response.json()
        except ValueError:
            return {}


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(response: httpx.Response) -> dict[str, Any]:
    """Vercel's ``{"error": {"code", "message"}}``, whatever shape actually came."""
    error = _body(response).get("error")
    if isinstance(error, dict):
        return error
    return {"message": str(error)[:300]} if error else {}


def _message(response: httpx.Response) -> str:
    error = _error(response)
    text = str(error.get("message") or response.reason_phrase or "error")[:500]
    code = error.get("code")
    return f"Vercel answered {response.status_code}" + (f" {code}" if code else "") + f": {text}"


def _deployment(data: dict[str, Any]) -> Deployment:
    meta = data.get("meta") or {}
    created = data.get("createdAt") or data.get("created") or 0
    creator = data.get("creator") or {}
    return Deployment(
        uid=data.get("uid") or data.get("id") or "",
        url=data.get("url") or "",
        created_at=datetime.fromtimestamp(created / 1000, tz=UTC),
        commit_sha=meta.get("githubCommitSha") or meta.get("gitlabCommitSha") or meta.get("bitbucketCommitSha"),
        commit_message=meta.get("githubCommitMessage") or meta.get("gitlabCommitMessage"),
        author=meta.get("githubCommitAuthorName") or meta.get("githubCommitAuthorLogin") or creator.get("username"),
        state=data.get("readyState") or data.get("state") or "READY",
    )
