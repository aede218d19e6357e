"""Vercel REST API adapter for code rollbacks (implements ``handlers.code.CodeProvider``).

Reads are retried on 429 (``Retry-After`` / ``X-RateLimit-Reset``), 5xx and timeouts with bounded
backoff. The rollback call is not idempotent: it is sent exactly once per call. A 429 or a refused
connection comes back as a definite ProviderError (with ``retry_after``) for the caller to send
again under its lease; after a 5xx, a timeout or a broken connection the error is ``uncertain``,
so the caller reads Vercel back first.
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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "rollbot"},
            timeout=timeout,
            trust_env=False,
            transport=transport,
        )
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
        self._request("POST", f"/v1/projects/{project}/rollback/{deployment_uid}", {"description": description},
                      idempotent=False)

    # -- transport ---------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._request("GET", path, params, idempotent=True)

    def _request(self, method: str, path: str, params: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        if self._team_id:
            query["teamId"] = self._team_id
        attempts = self._max_attempts if idempotent else 1  # a non-idempotent call is sent once
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = self._client.request(method, path, params=query)
            except httpx.TimeoutException:
                if not idempotent:
                    raise ProviderError(f"Vercel did not answer {method} {path} in time", code="timeout", uncertain=True) from None
                if last:
                    raise ProviderError(f"Vercel timed out on {method} {path}", code="timeout") from None
                self._sleep(self._backoff(attempt))
                continue
            except httpx.ConnectError:
                # Nothing was sent: safe to retry, for any call.
                if last:
                    raise ProviderError("cannot reach Vercel (connection refused)", code="unreachable") from None
                self._sleep(self._backoff(attempt))
                continue
            except httpx.HTTPError as error:
                # The request may have reached Vercel (the connection broke afterwards).
                raise ProviderError(f"lost the connection to Vercel ({type(error).__name__})", code="unreachable",
                                    uncertain=not idempotent) from None
            if response.status_code == 429:
                wait = min(_retry_after(response) or self._backoff(attempt), self._max_wait)
                if last:
                    raise ProviderError(_message(response), code="rate_limited", status=429, retry_after=wait)
                log.info("vercel rate limited; waiting %.1fs", wait)
                self._sleep(wait)
                continue
            if response.status_code >= 500:
                if not idempotent:
                    raise ProviderError(_message(response), code="server_error", status=response.status_code, uncertain=True)
                if not last:
                    self._sleep(self._backoff(attempt))
                    continue
            if response.status_code >= 400:
                details = _body(response).get("error") or {}
                raise ProviderError(_message(response), code=details.get("code"), status=response.status_code)
            return _body(response)
        raise ProviderError(f"Vercel kept refusing {method} {path}")  # pragma: no cover - loop always returns

    def _backoff(self, attempt: int) -> float:
        return min(0.25 * 2 ** (attempt - 1), self._max_wait)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _message(response: httpx.Response) -> str:
    error = _body(response).get("error") or {}
    text = error.get("message") or response.reason_phrase or "error"
    code = error.get("code")
    return f"Vercel answered {response.status_code}" + (f" {code}" if code else "") + f": {text}"


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if header and header.strip().isdigit():
        return float(header)
    reset = response.headers.get("X-RateLimit-Reset")
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - time.time())
    return None


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
