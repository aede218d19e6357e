"""Domain objects of an incident: plain dataclasses, no framework."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from handlers.config import RollbackType


class Status(str, Enum):
    PENDING = "pending"  # waiting for approvals
    EXECUTING = "executing"  # approved; the provider is being changed
    MONITORING = "monitoring"  # verified; reminders running
    RESOLVED = "resolved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def is_open(self) -> bool:
        return self in (Status.PENDING, Status.EXECUTING, Status.MONITORING)

    @property
    def holds_lock(self) -> bool:
        """Statuses during which a second rollback of the same type on the same env is refused."""
        return self in (Status.PENDING, Status.EXECUTING)


LOCKING_STATUSES = tuple(s.value for s in Status if s.holds_lock)


@dataclass(frozen=True)
class Deployment:
    """A Vercel deployment, reduced to what a human needs to recognise it."""

    uid: str
    url: str
    created_at: datetime
    commit_sha: str | None = None
    commit_message: str | None = None
    author: str | None = None
    state: str = "READY"

    @property
    def short_sha(self) -> str:
        return (self.commit_sha or "")[:7] or "unknown"

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "url": self.url,
            "created_at": self.created_at.isoformat(),
            "commit_sha": self.commit_sha,
            "commit_message": self.commit_message,
            "author": self.author,
            "state": self.state,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        return cls(
            uid=data["uid"],
            url=data["url"],
            created_at=datetime.fromisoformat(data["created_at"]),
            commit_sha=data.get("commit_sha"),
            commit_message=data.get("commit_message"),
            author=data.get("author"),
            state=data.get("state", "READY"),
        )


@dataclass(frozen=True)
class Plan:
    """Exactly what will be done. Approvals are bound to its hash."""

    kind: RollbackType
    env: str
    target: str  # provider-side thing being changed (the Vercel project id for code)
    from_ref: str
    to_ref: str
    params: dict[str, Any] = field(default_factory=dict)
    from_deployment: Deployment | None = None
    to_deployment: Deployment | None = None

    @property
    def hash(self) -> str:
        canonical = json.dumps(
            [self.kind, self.env, self.target, self.from_ref, self.to_ref, self.params],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "env": self.env,
            "target": self.target,
            "from_ref": self.from_ref,
            "to_ref": self.to_ref,
            "params": self.params,
            "from_deployment": self.from_deployment.to_json() if self.from_deployment else None,
            "to_deployment": self.to_deployment.to_json() if self.to_deployment else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            kind=data["kind"],
            env=data["env"],
            target=data["target"],
            from_ref=data["from_ref"],
            to_ref=data["to_ref"],
            params=data.get("params") or {},
            from_deployment=Deployment.from_json(data["from_deployment"]) if data.get("from_deployment") else None,
            to_deployment=Deployment.from_json(data["to_deployment"]) if data.get("to_deployment") else None,
        )


@dataclass(frozen=True)
class Approval:
    approver: str
    plan_hash: str
    at: datetime


@dataclass(frozen=True)
class StepRun:
    name: str
    status: str  # running | ok | failed | skipped
    started_at: datetime
    finished_at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class HealthResult:
    url: str
    ok: bool
    status: int | None
    latency_ms: int
    error: str | None = None


@dataclass(frozen=True)
class Resolution:
    resolved_by: str
    root_cause: str
    lessons: str
    at: datetime


@dataclass(frozen=True)
class Incident:
    id: int
    kind: RollbackType
    env: str
    status: Status
    requester: str
    reason: str
    plan: Plan
    created_at: datetime
    approvals_needed: int
    expires_at: datetime
    checklist: dict[str, bool] = field(default_factory=dict)
    approvals: tuple[Approval, ...] = ()
    channel: str | None = None
    root_ts: str | None = None
    progress_ts: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    executed_at: datetime | None = None
    rolled_back_at: datetime | None = None
    verified_at: datetime | None = None
    finished_at: datetime | None = None
    failure: str | None = None
    resolution: Resolution | None = None
    summary_ts: str | None = None

    @property
    def ref(self) -> str:
        return f"RB-{self.id}"

    @property
    def plan_hash(self) -> str:
        return self.plan.hash

    def valid_approvals(self) -> tuple[Approval, ...]:
        """Approvals bound to the plan as it is now; any others are void."""
        return tuple(a for a in self.approvals if a.plan_hash == self.plan_hash)
