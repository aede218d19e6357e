"""Domain objects of an incident: plain dataclasses, no framework."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from handlers.plans import PlanBase


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
    kind: str  # the name of a registered RollbackKind
    env: str
    status: Status
    requester: str
    reason: str
    plan: PlanBase
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
    drill: bool = False  # a rehearsal on a non-production environment
    issue: str | None = None  # the decision matrix's issue type it was started from ("Security")
    severity: str | None = None  # the severity chosen with it ("Critical")

    @property
    def ref(self) -> str:
        return f"RB-{self.id}"

    @property
    def plan_hash(self) -> str:
        return self.plan.hash

    def valid_approvals(self) -> tuple[Approval, ...]:
        """Approvals bound to the plan as it is now; any others are void."""
        return tuple(a for a in self.approvals if a.plan_hash == self.plan_hash)


FOLLOW_UP_CATEGORIES = {"docs": "Runbook / docs", "tests": "Test to add"}
"""What a follow-up of the runbook's "Documentation Updates" is about: a change to the runbook or
the docs, or a test to add."""


@dataclass(frozen=True)
class NewFollowUp:
    category: str  # a key of FOLLOW_UP_CATEGORIES
    text: str
    owner: str  # a Slack user ID


@dataclass(frozen=True)
class FollowUp:
    """One follow-up of a resolved incident, owned by one person, reminded by DM until done."""

    id: int
    incident_id: int
    category: str
    text: str
    owner: str
    created_at: datetime
    rounds: int = 1  # reminders scheduled so far (the first comes with the resolution)
    done_by: str | None = None
    done_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.done_at is not None


class Why(str):
    """A refusal's message for the user, with a short stable ``code`` for the audit log and the
    metrics (``not_an_approver``, ``plan_changed``): the message may change wording, the code not."""

    code: str

    def __new__(cls, message: str, code: str) -> Why:
        made = super().__new__(cls, message)
        made.code = code
        return made
