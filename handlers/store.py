"""The store's ports, one per role: incidents, approvals, executions (the lease), steps, the
audit log and due jobs. Postgres implements them all (``integrations.pg_store``); the unit tier
runs the core on in-memory fakes of the same ports (``tests/fakes``), and one set of contract
tests holds both to the same behaviour.

Decisions that must happen once are conditional writes here: an implementation makes each
method atomic, and the ones that say "in one transaction" all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from handlers.model import Incident, Resolution, Status, StepRun
from handlers.plans import PlanBase

if TYPE_CHECKING:
    from handlers.summary import Summary


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
    drill: bool = False


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


class Incidents(Protocol):
    """Incidents and their lifecycle."""

    def create_incident(self, new: NewIncident) -> Incident:
        """Insert atomically with its expiry job; raise LockHeld if a locking incident of that
        kind+env exists."""

    def get(self, incident_id: int) -> Incident | None: ...
    def recent(self, limit: int, env: str | None = None) -> list[Incident]: ...
    def incident_count(self, env: str | None = None) -> int:
        """How many incidents there are (drills too), so a list of the recent ones can say how
        many it does not show."""
    def open_incidents(self) -> list[Incident]: ...
    def last_rolled_back(self, drill: bool = False) -> Incident | None:
        """The newest incident that rolled something back: a real one, or with ``drill`` a drill."""
    def set_refs(self, incident_id: int, **refs: str) -> None: ...
    def set_checklist(self, incident_id: int, key: str, checked: bool) -> Incident | None: ...
    def add_checklist(self, incident_id: int, keys: Sequence[str]) -> None: ...

    def transition(
        self, incident_id: int, from_status: Sequence[Status], to_status: Status, *, owner: str | None = None,
        **fields: Any
    ) -> Incident | None:
        """Conditional update; None when the incident was not in ``from_status`` (or, with
        ``owner``, when that executor no longer holds the execution lease)."""

    def orphaned_requests(self, older_than: datetime) -> list[int]:
        """PENDING incidents whose root message was never recorded (a crash mid-request)."""

    def resolve(self, incident_id: int, resolution: Resolution, summary: Summary, status: Status,
                finished_at: datetime) -> Incident | None:
        """Store resolution + summary, set ``status`` and queue the summary's delivery, in one
        transaction, only if not resolved before."""
    def summary(self, incident_id: int) -> Summary | None:
        """The stored summary, validated (raises PlanError-like ValueError when malformed)."""


class Approvals(Protocol):
    """Approvals, bound to a plan hash; the one that completes the quorum decides."""

    def approve(self, incident_id: int, approver: str, plan_hash: str, at: datetime,
                required: Sequence[str] = ()) -> ApprovalOutcome:
        """Record an approval (refused once ``expires_at`` has passed, or while a ``required``
        checklist item is unticked) and, when it completes the quorum, move pending -> executing
        and queue the ``execute`` job (waking the workers); the audit rows for both are written
        in the same transaction. Exactly one caller sees ``decided``."""

    def reopen(self, incident_id: int, owner: str, old_hash: str, plan: PlanBase,
               expires_at: datetime) -> Incident | None:
        """EXECUTING -> PENDING with ``plan`` (approvals of the old hash become void), by the
        lease holder, before anything was executed; the expiry job is written again. None when
        fenced or no longer on ``old_hash``."""


class Executions(Protocol):
    """The execution lease (on the store's clock) and what only its holder may write."""

    def claim_execution(self, incident_id: int, owner: str, lease: timedelta) -> bool:
        """Take the lease of an EXECUTING incident that nobody holds, or whose lease has run out
        (on the store's clock)."""

    def renew_execution(self, incident_id: int, owner: str, lease: timedelta) -> bool:
        """Extend ``owner``'s lease; False when someone else holds it now."""

    def stale_executions(self) -> list[int]:
        """EXECUTING incidents whose executor's lease has run out (not those never claimed: their
        ``execute`` job is still due)."""

    def mark_rolled_back(self, incident_id: int, owner: str, at: datetime) -> bool:
        """Record when production moved (the first time only); fenced by the lease."""

    def start_monitoring(self, incident_id: int, owner: str, verified_at: datetime, checklist: Sequence[str],
                         jobs: Sequence[NewJob]) -> Incident | None:
        """EXECUTING -> MONITORING with the post-rollback checklist and the reminders, in one
        transaction, by the lease holder only."""


STEP_STALE = timedelta(minutes=2)
"""A step still "running" after this long lost its runner (a crash): it may be restarted."""


class Steps(Protocol):
    """Step runs: each named step of an incident starts once (a unique key)."""

    def start_step(self, incident_id: int, name: str, at: datetime) -> bool:
        """True for the first caller only (unique key)."""

    def restart_step(self, incident_id: int, name: str, at: datetime) -> bool:
        """Set a step running again when it failed, its outcome is uncertain, or it has been
        running since before ``at - STEP_STALE``; True when a retry may proceed."""

    def finish_step(self, incident_id: int, name: str, status: str, detail: str, at: datetime) -> None: ...

    def note_step(self, incident_id: int, name: str, detail: str) -> None:
        """Say how a running step is getting on ("812 MB written, 1m 40s"); no-op once it finished."""

    def steps(self, incident_id: int) -> list[StepRun]: ...


MESSAGE_IN_FLIGHT = timedelta(seconds=90)
"""How long an attempt to post a message may hold it; a poster gives up well before."""


@dataclass(frozen=True)
class MessageRecord:
    """Where one of an incident's Slack messages stands. ``state``: "new" (nobody tried: post
    it), "doubt" (an attempt's outcome is unknown: read Slack back before posting), "busy"
    (another attempt is in flight: leave it), or "posted" (``ts`` says where). ``since``: when
    the first attempt began (a read-back need not search older messages)."""

    state: str
    ts: str | None = None
    since: datetime | None = None


class Messages(Protocol):
    """The ledger of an incident's Slack messages, by identity key ("root", "monitor.2", ...),
    the same key the message carries in its Slack metadata."""

    def begin_message(self, incident_id: int, key: str, at: datetime) -> MessageRecord:
        """Claim the right to post (or settle) ``key`` until ``at + MESSAGE_IN_FLIGHT``, unless
        it is posted or another claim is live; returns where it stood before this call."""

    def message_posted(self, incident_id: int, key: str, ts: str) -> None: ...

    def message_unsettled(self, incident_id: int, key: str) -> None:
        """Give up the claim with the outcome unknown: the next attempt reads Slack back."""

    def message_not_posted(self, incident_id: int, key: str) -> None:
        """The attempt certainly did not post (Slack refused it): a later one starts afresh."""


class AuditLog(Protocol):
    """Append-only."""

    def audit(self, incident_id: int | None, actor: str, action: str, outcome: str, detail: dict[str, Any],
              at: datetime) -> None: ...
    def audit_log(self, incident_id: int) -> list[AuditEntry]: ...


class Jobs(Protocol):
    """Due work, claimed without blocking other workers."""

    def schedule(self, incident_id: int | None, kind: str, due_at: datetime, payload: dict[str, Any]) -> None: ...
    def claim_due(self, now: datetime, worker: str, limit: int = 20) -> list[DueJob]: ...
    def finish_job(self, job_id: int, outcome: str) -> None: ...
    def retry_job(self, job_id: int, due_at: datetime, outcome: str) -> None: ...
    def cancel_jobs(self, incident_id: int, kind: str) -> None: ...
    def pending_jobs(self, incident_id: int) -> list[DueJob]: ...


class IncidentStore(Incidents, Approvals, Executions, Steps, Messages, AuditLog, Jobs, Protocol):
    """Everything the core keeps: every role, one store."""
