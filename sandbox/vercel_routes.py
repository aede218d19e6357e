"""Request handling of the Vercel emulator: faults, routing and the API endpoints.

A base of ``VercelEmulator``, which holds the state; split out so each module stays one idea.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox.vercel_records import (
    ERROR_CODES,
    JSON,
    AliasJob,
    ApiError,
    DeploymentRecord,
    ProjectRecord,
    error_body,
    now_ms,
)

logger = logging.getLogger("rollbot.sandbox.vercel")


class VercelRoutes:
    token: str
    team_id: str | None
    alias_delay: float
    calls: list[JSON]
    _lock: threading.RLock
    _faults: list[JSON]
    _projects: dict[str, ProjectRecord]
    _deployments: dict[str, DeploymentRecord]
    _project: Callable[[str], ProjectRecord]
    _known: Callable[[str], bool]
    _sorted: Callable[[str | None], list[DeploymentRecord]]
    _project_view: Callable[[ProjectRecord], JSON]
    build_env_ok: Callable[[str], str | None]
    _settle: Callable[[], None]
    state: Callable[[], JSON]
    _edge_route: Callable[[str, list[str], Any], tuple[int, Any, dict[str, str]] | None]
    _env_route: Callable[..., tuple[int, Any, dict[str, str]] | None]

    def _fault(self, method: str, path: str) -> tuple[int, JSON, dict[str, str]] | None:
        for fault in self._faults:
            if fault["kind"] in ("drop", "late") or fault["left"] <= 0 or not path.startswith(fault["prefix"]):
                continue
            if fault["method"] and fault["method"].upper() != method:
                continue
            fault["left"] -= 1
            if fault["kind"] == "error":
                status = fault["status"]
                return status, error_body(ERROR_CODES.get(status, "error"),
                                      "An unexpected error occurred (scripted)"), {}
            retry = int(fault["retry_after"])
            reset = int(time.time()) + retry
            headers = {"Retry-After": str(retry), "X-RateLimit-Limit": "100",
                       "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
            limit = {"remaining": 0, "reset": reset, "resetMs": reset * 1000, "total": 100}
            return 429, error_body("rate_limited", "Rate limit exceeded", limit=limit), headers
        return None

    def _take_drop(self, method: str, path: str) -> bool:
        for fault in self._faults:
            if fault["kind"] == "drop" and fault["left"] > 0 and path.startswith(fault["prefix"]) \
                    and (not fault["method"] or fault["method"].upper() == method):
                fault["left"] -= 1
                return True
        return False

    def _handle(self, method: str, target: str, authorization: str | None,
                raw_body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """Answer one HTTP request: (status, encoded body, extra headers)."""
        split = urlsplit(target)
        path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        try:
            body: Any = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body.decode("utf-8", "replace")
        with self._lock:
            self._settle()
            drop = self._take_drop(method, path)
            try:
                status, payload, headers = self._route(method, path, query, authorization, body)
            except ApiError as exc:
                status, payload, headers = exc.status, error_body(exc.code, exc.message), {}
            except Exception as exc:
                logger.exception("vercel emulator failed on %s %s", method, path)
                status, payload, headers = 500, error_body("internal_server_error", repr(exc)), {}
            if drop:
                status = 0  # the handler closes the connection without answering
            self.calls.append({"method": method, "path": path, "query": query, "body": body,
                               "status": status, "at": time.time()})
            return status, json.dumps(payload).encode(), headers

    def _route(self, method: str, path: str, query: dict[str, str],
               authorization: str | None, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        parts = [p for p in path.split("/") if p]
        if parts == ["_emulator", "state"] and method == "GET":
            return 200, self.state(), {}
        site = parts[:1] == ["site"]
        if not site:
            if authorization != f"Bearer {self.token}":
                raise ApiError(403, "Not authorized")
            if self.team_id is not None and query.get("teamId", self.team_id) != self.team_id:
                raise ApiError(403, "Not authorized")
        fault = self._fault(method, path)
        if fault is not None:
            return fault
        if site and len(parts) == 4 and parts[2:] == ["api", "health"] and method == "GET":
            return self._health(parts[1])
        if method == "GET" and parts[:2] in (["v6", "deployments"], ["v7", "deployments"]) \
                and len(parts) == 2:
            return 200, self._list(query), {}
        if method == "GET" and parts[:2] == ["v13", "deployments"] and len(parts) == 3:
            dep = self._find_deployment(parts[2])
            return 200, {"id": dep.uid, **dep.public()}, {}
        if method == "GET" and parts[:2] == ["v9", "projects"] and len(parts) == 3:
            return 200, self._project_view(self._api_project(parts[2])), {}
        if method == "POST" and len(parts) == 5 and parts[:2] == ["v1", "projects"] \
                and parts[3] == "rollback":
            self._alias(parts[2], parts[4], "rollback")
            return 201, {}, {}
        if method == "POST" and len(parts) == 5 and parts[:2] == ["v10", "projects"] \
                and parts[3] == "promote":
            self._alias(parts[2], parts[4], "promote")
            return 202, {}, {}
        edge = self._edge_route(method, parts, body) or self._env_route(method, parts, query, body, self._api_project)
        if edge is not None:
            return edge
        raise ApiError(404, f"The requested path {path} was not found")

    def _api_project(self, id_or_name: str) -> ProjectRecord:
        try:
            return self._project(id_or_name)
        except KeyError:
            raise ApiError(404, "Project not found") from None

    def _find_deployment(self, id_or_url: str) -> DeploymentRecord:
        key = id_or_url.removeprefix("https://").removeprefix("http://").rstrip("/")
        dep = self._deployments.get(key) or next(
            (d for d in self._deployments.values() if d.url == key), None)
        if dep is None:
            raise ApiError(404, "Deployment not found")
        return dep

    def _list(self, query: dict[str, str]) -> JSON:
        def number(name: str, default: int | None) -> int | None:
            try:
                return int(query[name]) if query.get(name) else default
            except ValueError:
                raise ApiError(400, f"Invalid request: `{name}` should be a number") from None

        limit = number("limit", 20)
        if limit is None or not 1 <= limit <= 100:
            raise ApiError(400, "Invalid request: `limit` should be between 1 and 100")
        until, since = number("until", None), number("since", None)
        project_ref = query.get("projectId") or query.get("app")
        project_id = None
        if project_ref:
            project_id = self._project(project_ref).id if self._known(project_ref) else "\0none"
        states = {s.strip().upper() for s in query.get("state", "").split(",") if s.strip()}
        deps = [d for d in self._sorted(project_id)
                if (not query.get("target") or d.target == query["target"])
                and (not states or d.state in states)
                and (until is None or d.created_at < until)
                and (since is None or d.created_at > since)]
        page = deps[:limit]
        return {"deployments": [d.public() for d in page],
                "pagination": {"count": len(page),
                               "next": page[-1].created_at if len(deps) > limit else None,
                               "prev": page[0].created_at if page else None}}

    def _alias(self, project_ref: str, uid: str, kind: str) -> None:
        project = self._api_project(project_ref)
        dep = self._find_deployment(uid)
        if dep.project_id != project.id:
            raise ApiError(400, f"Deployment {uid} does not belong to project {project.name}")
        if dep.state != "READY":
            raise ApiError(400, f"Deployment {uid} is not READY (state {dep.state})")
        if kind == "rollback" and dep.target != "production":
            raise ApiError(400, f"Deployment {uid} was never a production deployment")
        if project.job is not None:
            raise ApiError(409, "An alias request is already in progress for this project")
        request: JSON = {"fromDeploymentId": project.production, "toDeploymentId": dep.uid,
                         "jobStatus": "pending", "requestedAt": now_ms(), "type": kind}
        started = time.monotonic()
        failure = project.fail_next.pop(0) if project.fail_next else None
        phantom = project.phantom_next > 0
        project.phantom_next -= 1 if phantom else 0
        project.job = AliasJob(request, started, started + max(self.alias_delay, 0.0), failure, phantom)
        project.last_alias_request = request
        if kind == "rollback":
            project.last_rollback_target = request
        if self.alias_delay <= 0:
            self._settle()

    def _health(self, project_ref: str) -> tuple[int, JSON, dict[str, str]]:
        try:
            project = self._project(project_ref)
        except KeyError:
            return 404, {"status": "error", "message": "DEPLOYMENT_NOT_FOUND"}, {}
        dep = self._deployments.get(project.production or "")
        if dep is None:
            return 500, {"status": "error", "deployment": None,
                         "message": "no production deployment"}, {}
        if not dep.healthy:
            return 500, {"status": "error", "deployment": dep.uid,
                         "message": "health check failed"}, {}
        missing = self.build_env_ok(dep.uid)
        if missing:
            return 500, {"status": "error", "deployment": dep.uid,
                         "message": f"misconfigured: {missing}"}, {}
        return 200, {"status": "ok", "deployment": dep.uid}, {}
