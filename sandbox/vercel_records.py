"""Records of the Vercel emulator: deployments, projects, alias jobs, and Vercel's error body."""

from __future__ import annotations

import hashlib
import string
import time
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
BASE62 = string.ascii_letters + string.digits
HOUR_MS = 3_600_000
ERROR_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 409: "conflict",
                500: "internal_server_error", 502: "bad_gateway", 503: "service_unavailable",
                504: "gateway_timeout"}


def now_ms() -> int:
    return int(time.time() * 1000)


def error_body(code: str, message: str, **extra: Any) -> JSON:
    """A Vercel-shaped error body."""
    return {"error": {"code": code, "message": message, **extra}}


class ApiError(Exception):
    """Raised inside a route to answer with a Vercel error body."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or ERROR_CODES.get(status, "error")


@dataclass
class DeploymentRecord:
    uid: str
    project_id: str
    name: str
    url: str
    created_at: int
    ready: int | None
    state: str
    target: str | None
    healthy: bool
    commit_sha: str
    commit_message: str
    author: str
    seq: int
    extra_meta: dict[str, str] = field(default_factory=dict)  # a create request's own `meta`

    def public(self) -> JSON:
        """The deployment as Vercel's list endpoint shows it."""
        login = "-".join(self.author.lower().split()) or "unknown"
        return {
            "uid": self.uid, "name": self.name, "url": self.url,
            "created": self.created_at, "createdAt": self.created_at,
            "buildingAt": self.created_at + 1_000, "ready": self.ready,
            "state": self.state, "readyState": self.state, "type": "LAMBDAS", "source": "git",
            "target": self.target, "projectId": self.project_id,
            "creator": {"uid": "usr_" + hashlib.sha1(login.encode()).hexdigest()[:20],
                        "username": login},
            "meta": {"githubCommitSha": self.commit_sha,
                     "githubCommitMessage": self.commit_message,
                     "githubCommitAuthorName": self.author,
                     "githubCommitAuthorLogin": login, "githubCommitRef": "main", **self.extra_meta},
            "inspectorUrl": f"https://vercel.com/sandbox/{self.name}/{self.uid[4:]}",
            "isRollbackCandidate": self.state == "READY" and self.target == "production",
        }


@dataclass
class AliasJob:
    request: JSON  # the very dict exposed as lastAliasRequest; settling mutates it
    started: float
    due: float
    failure: str | None
    phantom: bool = False  # reports succeeded, yet production does not move (a lying read path)


@dataclass
class ProjectRecord:
    id: str
    name: str
    created_at: int
    production: str | None = None
    last_alias_request: JSON | None = None
    last_rollback_target: JSON | None = None
    job: AliasJob | None = None
    fail_next: list[str] = field(default_factory=list)
    phantom_next: int = 0
    required_env: dict[str, str] = field(default_factory=dict)  # health fails for builds without these values


def copy_json(value: JSON | None) -> JSON | None:
    return dict(value) if value is not None else None
