"""The store's ports, one per role: incidents, approvals, executions (the lease), steps, the
message ledgers (an incident's messages, and the standing reminders), the audit log, due jobs
and the follow-ups of resolved incidents. Postgres implements them all (``integrations.pg_store``);
the unit tier runs the core on in-memory fakes of the same ports (``tests/fakes``), and one set of
contract tests holds both to the same behaviour.

Decisions that must happen once are conditional writes here: an implementation makes each
method atomic, and the ones that say "in one transaction" all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from handlers.model import FollowUp, Incident, NewFollowUp, Resolution, Status, StepRun
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
    issue: str | None = None  # the decision matrix row it was started from, if any
    severity: str | None = None
    request_job: int | None = None  # the worker's ``request`` job it was planned by: at most one each


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
    incident_kind: str | None = None  # its incident's kind and environment, read with the claim (for the logs)
    incident_env: str | None = None


def claim_order(job: DueJob) -> tuple[bool, datetime]:
    """The order due jobs are claimed and started in: executions first, then by due time."""
    return job.kind != "execute", job.due_at


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
        """Insert atomically with its expiry job; raise LockHeld if a locking incident on that env
        shares a lock with it (``handlers.kind.lock_names``: a kind's own name, each part of a
        combined one)."""

    def get(self, incident_id: int) -> Incident | None: ...
    def incident_for_request(self, request_job: int) -> Incident | None:
        """The incident planned by that ``request`` job, if one was (a job run again after a crash
        finds it instead of planning a second)."""
    def recent(self, limit: int, env: str | None = None) -> list[Incident]: ...
    def incident_count(self, env: str | None = None) -> int:
        """How many incidents there are (drills too), so a list of the recent ones can say how
        many it does not show."""
    def open_incidents(self) -> list[Incident]: ...
    def rolled_back_plans(self, env: str, limit: int = 100) -> list[PlanBase]:
        """The plans of ``env``'s newest incidents that rolled something back, newest first (what
        the code kind must not pick as "last known good": a deployment production was rolled away
        from)."""
    def last_rolled_back(self, drill: bool = False) -> Incident | None:
        """The newest incident that rolled something back: a real one, or with ``drill`` a drill."""
    def status_counts(self) -> dict[str, int]:
        """For ``/metrics``: incidents per status (drills included), the drills among them per
        status as ``"drill.<status>"``, and due jobs given up on as ``"dead_jobs"``."""
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
                finished_at: datetime, follow_ups: Sequence[NewFollowUp] = ()) -> Incident | None:
        """Store resolution + summary + ``follow_ups``, set ``status``, queue the summary's delivery
        and each follow-up's first reminder (a ``follow_up`` job due at ``resolution.at``), in one
        transaction, only if not resolved before."""
    def summary(self, incident_id: int) -> Summary | None:
        """The stored summary, validated (raises PlanError-like ValueError when malformed)."""


class Approvals(Protocol):
    """Approvals, bound to a plan hash; the one that completes the quorum decides."""

    def approve(self, incident_id: int, approver: str, plan_hash: str, at: datetime,
                required: Sequence[str] = (), announce: NewJob | None = None) -> ApprovalOutcome:
        """Record an approval (refused once ``expires_at`` has passed, or while a ``required``
        checklist item is unticked) and, when it completes the quorum, move pending -> executing
        and queue the ``execute`` job (waking the workers); the audit rows for both are written
        in the same transaction. Exactly one caller sees ``decided``. ``announce``, when the
        approval is recorded, is queued in the same transaction with ``decided`` added to its
        payload."""

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

    def incident_with_steps(self, incident_id: int) -> tuple[Incident, list[StepRun]] | None:
        """``get`` and ``steps`` together (one round trip): what a redraw reads, several times a
        rollback; None when there is no such incident."""


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


@dataclass(frozen=True)
class StandingRecord:
    """The newest reminder of a standing series ("drill", "review"): its number, whether it is
    "posted" or still "posting" (in flight, or its outcome unknown), when its first attempt
    began, and when it was known to be in Slack (the next one is measured from then: one settled
    late is not followed by the next at once)."""

    seq: int
    state: str
    since: datetime
    posted_at: datetime | None = None


class Standing(Protocol):
    """The ledger of the standing reminders, which belong to no incident: each is one number of a
    series ("drill" 1, 2, ...), posted once, with the same claims as ``Messages``."""

    def last_standing(self, series: str) -> StandingRecord | None:
        """The highest-numbered reminder of ``series`` in the ledger, posted or not; None when none."""

    def begin_standing(self, series: str, seq: int, at: datetime) -> MessageRecord:
        """Claim reminder ``seq`` of ``series`` as ``Messages.begin_message`` claims a key."""

    def standing_posted(self, series: str, seq: int, ts: str, at: datetime) -> None:
        """It is in Slack at ``ts`` (posted, or found by a read-back), known so at ``at``."""

    def standing_unsettled(self, series: str, seq: int) -> None:
        """Give up the claim with the outcome unknown: the next attempt reads Slack back."""

    def standing_not_posted(self, series: str, seq: int) -> None:
        """The attempt certainly did not post: the row goes, and a later attempt starts afresh."""


class Ledgers(Messages, Standing, Protocol):
    """Both message ledgers: what posting exactly once needs."""


class AuditLog(Protocol):
    """Append-only."""

    def audit(self, incident_id: int | None, actor: str, action: str, outcome: str, detail: dict[str, Any],
              at: datetime) -> None: ...
    def audit_log(self, incident_id: int) -> list[AuditEntry]: ...


class Jobs(Protocol):
    """Due work, claimed without blocking other workers."""

    def schedule(self, incident_id: int | None, kind: str, due_at: datetime, payload: dict[str, Any]) -> None: ...
    def claim_due(self, now: datetime, worker: str, limit: int = 20, executions: int | None = None) -> list[DueJob]:
        """Up to ``limit`` due jobs, claimed: executions first (an approved rollback waits for
        nothing else), then by due time; in that order. With ``executions``, executions have a
        limit of their own and ``limit`` counts the other jobs (a worker that runs executions on
        a pool of their own claims for both pools at once)."""
    def finish_job(self, job_id: int, outcome: str) -> None: ...
    def retry_job(self, job_id: int, due_at: datetime, outcome: str) -> None: ...
    def cancel_jobs(self, incident_id: int, kind: str) -> None: ...
    def pending_jobs(self, incident_id: int) -> list[DueJob]: ...


FOLLOW_UP_JOB = "follow_up"
"""The due job that DMs a follow-up's owner; payload ``{"follow_up": id, "round": n}``."""


class FollowUps(Protocol):
    """The follow-ups of resolved incidents (``Incidents.resolve`` writes them) and their reminders."""

    def follow_ups(self, incident_id: int) -> list[FollowUp]:
        """An incident's follow-ups in the order they were written."""
    def follow_up(self, follow_up_id: int) -> FollowUp | None: ...
    def next_follow_up_reminder(self, follow_up_id: int, after_round: int, due_at: datetime) -> bool:
        """Schedule reminder ``after_round + 1`` (a ``follow_up`` job due at ``due_at``) and count it,
        in one transaction, once: only while ``after_round`` is the last one scheduled and the
        follow-up is open. False otherwise (another runner scheduled it, or it is done)."""
    def follow_up_done(self, follow_up_id: int, by: str, at: datetime) -> FollowUp | None:
        """Mark it done by ``by`` once and cancel its due reminders, in one transaction; None when
        it was done before or does not exist."""


class IncidentStore(Incidents, Approvals, Executions, Steps, Messages, Standing, AuditLog, Jobs, FollowUps,
                    Protocol):
    """Everything the core keeps: every role, one store."""
