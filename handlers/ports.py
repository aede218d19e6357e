"""Ports: what the core needs from the outside world, as typing.Protocols.

Adapters in ``integrations/`` and ``bot/`` implement them; tests use hand-written fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from handlers.kind import Verification
from handlers.model import HealthResult, Incident, Resolution, Status, StepRun
from handlers.plans import PlanBase

if TYPE_CHECKING:
    from handlers.summary import Summary


class ProviderError(Exception):
    """A provider call failed; ``message`` is safe to show (no secrets)."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 uncertain: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.uncertain = uncertain  # the call may have taken effect: read back before retrying
        self.retry_after = retry_after  # refused for now (429): safe to send again after this wait

    @property
    def refused_for_now(self) -> bool:
        """Certainly not performed, and worth sending again (rate limited, or not connected)."""
        return not self.uncertain and (self.status == 429 or self.code == "unreachable")


class DeliveryFailed(Exception):
    """A message could not be delivered. ``definite``: certainly not posted (safe to retry);
    otherwise it may have been posted (retrying could duplicate it)."""

    def __init__(self, message: str, *, definite: bool) -> None:
        super().__init__(message)
        self.definite = definite


class HealthChecker(Protocol):
    def check(self, urls: Sequence[str]) -> list[HealthResult]: ...


class DirectoryUnavailable(Exception):
    """A user group could not be read (and no earlier copy is known)."""


class Directory(Protocol):
    def group_members(self, group_id: str) -> frozenset[str]:
        """Members of a Slack user group; raises DirectoryUnavailable."""


@dataclass(frozen=True)
class NewIncident:
    kind: str
    env: str
    requester: str
    reason: str
    plan: PlanBase
    approvals_needed: int
    checklist: dict[str, bool]
    created_at: datetime
    expires_at: datetime


class LockHeld(Exception):
    """Another rollback of the same type runs on that environment."""

    def __init__(self, incident: Incident) -> None:
        super().__init__(f"{incident.ref} holds the lock")
        self.incident = incident


@dataclass(frozen=True)
class ApprovalOutcome:
    incident: Incident
    recorded: bool  # False when this approver had already approved this plan
    decided: bool  # True only for the one call whose approval completed the quorum


@dataclass(frozen=True)
class NewJob:
    kind: str
    due_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class DueJob:
    id: int
    incident_id: int | None
    kind: str
    due_at: datetime
    payload: dict[str, Any]
    attempts: int = 1


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    incident_id: int | None
    actor: str
    action: str
    outcome: str
    detail: dict[str, Any]


class IncidentStore(Protocol):
    def create_incident(self, new: NewIncident) -> Incident:
        """Insert atomically with its expiry job; raise LockHeld if a locking incident of that
        kind+env exists."""

    def get(self, incident_id: int) -> Incident | None: ...
    def recent(self, limit: int, env: str | None = None) -> list[Incident]: ...
    def open_incidents(self) -> list[Incident]: ...
    def last_rolled_back(self) -> Incident | None: ...
    def set_refs(self, incident_id: int, **refs: str) -> None: ...
    def set_checklist(self, incident_id: int, key: str, checked: bool) -> Incident | None: ...
    def add_checklist(self, incident_id: int, keys: Sequence[str]) -> None: ...

    def approve(self, incident_id: int, approver: str, plan_hash: str, at: datetime) -> ApprovalOutcome:
        """Record an approval (refused once ``expires_at`` has passed) and, when it completes the
        quorum, move pending -> executing and queue the ``execute`` job (waking the workers);
        the audit rows for both are written in the same transaction. Exactly one caller sees
        ``decided``."""

    def claim_execution(self, incident_id: int, owner: str, lease: timedelta) -> bool:
        """Take the lease of an EXECUTING incident that nobody holds, or whose lease has run out
        (on the store's clock)."""

    def renew_execution(self, incident_id: int, owner: str, lease: timedelta) -> bool:
        """Extend ``owner``'s lease; False when someone else holds it now."""

    def stale_executions(self) -> list[int]:
        """EXECUTING incidents whose executor's lease has run out (not those never claimed: their
        ``execute`` job is still due)."""

    def reopen(self, incident_id: int, owner: str, old_hash: str, plan: PlanBase,
               expires_at: datetime) -> Incident | None:
        """EXECUTING -> PENDING with ``plan`` (approvals of the old hash become void), by the
        lease holder, before anything was executed; the expiry job is written again. None when
        fenced or no longer on ``old_hash``."""

    def transition(
        self, incident_id: int, from_status: Sequence[Status], to_status: Status, *, owner: str | None = None,
        **fields: Any
    ) -> Incident | None:
        """Conditional update; None when the incident was not in ``from_status`` (or, with
        ``owner``, when that executor no longer holds the execution lease)."""

    def mark_rolled_back(self, incident_id: int, owner: str, at: datetime) -> bool:
        """Record when production moved (the first time only); fenced by the lease."""

    def start_monitoring(self, incident_id: int, owner: str, verified_at: datetime, checklist: Sequence[str],
                         jobs: Sequence[NewJob]) -> Incident | None:
        """EXECUTING -> MONITORING with the post-rollback checklist and the reminders, in one
        transaction, by the lease holder only."""

    def orphaned_requests(self, older_than: datetime) -> list[int]:
        """PENDING incidents whose root message was never recorded (a crash mid-request)."""

    def start_step(self, incident_id: int, name: str, at: datetime) -> bool:
        """True for the first caller only (unique key)."""

    def restart_step(self, incident_id: int, name: str, at: datetime) -> bool:
        """Set a FAILED step running again; True when it was failed (a retry may proceed)."""

    def finish_step(self, incident_id: int, name: str, status: str, detail: str, at: datetime) -> None: ...
    def steps(self, incident_id: int) -> list[StepRun]: ...
    def resolve(self, incident_id: int, resolution: Resolution, summary: Summary, status: Status,
                finished_at: datetime) -> Incident | None:
        """Store resolution + summary, set ``status`` and queue the summary's delivery, in one
        transaction, only if not resolved before."""
    def summary(self, incident_id: int) -> Summary | None:
        """The stored summary, validated (raises PlanError-like ValueError when malformed)."""

    def audit(self, incident_id: int | None, actor: str, action: str, outcome: str, detail: dict[str, Any],
              at: datetime) -> None: ...
    def audit_log(self, incident_id: int) -> list[AuditEntry]: ...

    def schedule(self, incident_id: int | None, kind: str, due_at: datetime, payload: dict[str, Any]) -> None: ...
    def claim_due(self, now: datetime, worker: str, limit: int = 20) -> list[DueJob]: ...
    def finish_job(self, job_id: int, outcome: str) -> None: ...
    def retry_job(self, job_id: int, due_at: datetime, outcome: str) -> None: ...
    def cancel_jobs(self, incident_id: int, kind: str) -> None: ...


class LiveState(Protocol):
    """Fast, rebuildable state (Redis). Never the only guard of a decision."""

    def first_delivery(self, key: str, ttl_seconds: int = 600) -> bool: ...
    def thread_refs(self, incident_id: int) -> dict[str, str] | None: ...
    def remember_thread(self, incident_id: int, refs: dict[str, str]) -> None: ...
    def throttle(self, key: str, per_second: float, burst: int = 1) -> float:
        """Shared outbound pacing: 0 to go now, else seconds to wait."""


class Notifier(Protocol):
    """Speaks to the humans (Slack). Renders domain objects; decides nothing.

    Updates and thread notes are best effort (a failure is logged, never raised), so a Slack
    outage cannot fail a rollback. ``post_root``, ``reminder`` and ``summary`` raise
    DeliveryFailed, because their callers retry or undo."""

    def post_root(self, incident: Incident, steps: Sequence[StepRun]) -> tuple[str, str]:
        """Post the root message; returns (channel, ts)."""

    def refresh_root(self, incident: Incident, steps: Sequence[StepRun]) -> None: ...
    def notify_team(self, incident: Incident, mentions: Sequence[str]) -> None: ...
    def progress(self, incident: Incident, steps: Sequence[StepRun]) -> str | None:
        """Post the progress message the first time, update it in place after; returns its ts."""

    def verification(self, incident: Incident, result: Verification, health: Sequence[HealthResult], ok: bool) -> None: ...
    def reminder(self, incident: Incident, index: int, total: int, health: Sequence[HealthResult]) -> None:
        """Post the monitoring reminder; raises DeliveryFailed."""
    def failure(self, incident: Incident, error: str, next_step: str) -> None: ...
    def summary(self, incident: Incident, summary: Summary) -> str:
        """Post the summary in the channel (and link it in the thread); raises DeliveryFailed."""
    def plan_changed(self, incident: Incident, old: PlanBase) -> None: ...
    def closed(self, incident: Incident) -> None:
        """A request ended without a rollback (denied, cancelled, expired): tell the thread."""
    def tell(self, channel: str, user: str, text: str) -> None: ...
