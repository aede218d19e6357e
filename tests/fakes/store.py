"""An in-memory store: every role of ``handlers.store`` on plain dicts behind one lock.

It keeps the same promises as the Postgres store (the contract tests run against both): each
method is atomic, leases are on the store's clock, the audit log only grows. Hand-written, not a
mock, in the manner of cosmicpython's FakeRepository.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from handlers.clock import Clock
from handlers.kind import lock_names
from handlers.model import Approval, FollowUp, Incident, NewFollowUp, Resolution, Status, StepRun
from handlers.plans import PlanBase
from handlers.store import (
    MESSAGE_IN_FLIGHT,
    STEP_STALE,
    ApprovalOutcome,
    AuditEntry,
    DueJob,
    LockHeld,
    MessageRecord,
    NewIncident,
    NewJob,
    claim_order,
)
from handlers.summary import Summary
from tests.fakes.followups import FakeFollowUps
from tests.fakes.standing import FakeStandingTables

JOB_LEASE = timedelta(minutes=5)
MAX_JOB_ATTEMPTS = 50
_FIELDS = {"channel", "root_ts", "progress_ts", "summary_ts", "decided_by", "decided_at", "decision_note",
           "rolled_back_at", "verified_at", "finished_at", "failure"}


@dataclass
class _Row:
    incident: Incident
    exec_owner: str | None = None
    lease_until: datetime | None = None
    summary: Summary | None = None
    request_job: int | None = None


@dataclass
class _Job:
    id: int
    incident_id: int | None
    kind: str
    due_at: datetime
    payload: dict[str, Any]
    status: str = "due"
    attempts: int = 0
    lease_until: datetime | None = None
    outcome: str | None = None

    def view(self) -> DueJob:
        return DueJob(self.id, self.incident_id, self.kind, self.due_at, dict(self.payload), self.attempts)


@dataclass
class FakeStore(FakeStandingTables, FakeFollowUps):
    clock: Clock
    rows: dict[int, _Row] = field(default_factory=dict)
    approvals: list[Approval] = field(default_factory=list)
    approval_incidents: list[int] = field(default_factory=list)
    step_runs: dict[tuple[int, str], StepRun] = field(default_factory=dict)
    entries: list[AuditEntry] = field(default_factory=list)
    messages: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)  # the ledger's rows
    standing: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # the standing reminders' rows
    jobs: dict[int, _Job] = field(default_factory=dict)
    follow_up_rows: dict[int, FollowUp] = field(default_factory=dict)
    wakeups: int = 0  # NOTIFYs a Postgres store would have sent
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _job_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _follow_up_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- helpers -----------------------------------------------------------------------------

    def _view(self, incident_id: int) -> Incident | None:
        row = self.rows.get(incident_id)
        if row is None:
            return None
        mine = tuple(sorted((a for a, i in zip(self.approvals, self.approval_incidents, strict=True)
                             if i == incident_id), key=lambda a: (a.at, a.approver)))
        incident = row.incident
        executed = incident.decided_at if incident.status is not Status.PENDING else None
        return replace(incident, approvals=mine, executed_at=executed)

    def _set(self, incident_id: int, **changes: Any) -> None:
        row = self.rows[incident_id]
        row.incident = replace(row.incident, **changes)

    def _insert_jobs(self, incident_id: int | None, jobs: Sequence[NewJob]) -> None:
        for job in jobs:
            job_id = next(self._job_ids)
            self.jobs[job_id] = _Job(job_id, incident_id, job.kind, job.due_at, dict(job.payload))
        if jobs:
            self.wakeups += 1

    def _audit(self, incident_id: int | None, actor: str, action: str, outcome: str, at: datetime,
               **detail: Any) -> None:
        self.entries.append(AuditEntry(at, incident_id, actor, action, outcome, dict(detail)))

    def _cancel(self, incident_id: int, kind: str) -> None:
        for job in self.jobs.values():
            if job.incident_id == incident_id and job.kind == kind and job.status == "due":
                job.status = "cancelled"

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    # -- incidents ---------------------------------------------------------------------------

    def create_incident(self, new: NewIncident) -> Incident:
        with self.lock:
            if new.request_job is not None and any(r.request_job == new.request_job for r in self.rows.values()):
                raise ValueError(f"request job {new.request_job} already planned an incident")  # the unique index
            for row in self.rows.values():
                held = row.incident
                if (held.env == new.env and set(lock_names(held.kind)) & set(lock_names(new.kind))
                        and held.status.holds_lock):
                    raise LockHeld(self._view(held.id) or held)
            incident_id = next(self._ids)
            self.rows[incident_id] = _Row(Incident(
                id=incident_id, kind=new.kind, env=new.env, status=Status.PENDING, requester=new.requester,
                reason=new.reason, plan=new.plan, created_at=new.created_at, approvals_needed=new.approvals_needed,
                expires_at=new.expires_at, checklist=dict(new.checklist), drill=new.drill,
                issue=new.issue, severity=new.severity), request_job=new.request_job)
            self._insert_jobs(incident_id, [NewJob("expire", new.expires_at, {"plan_hash": new.plan.hash})])
            return self._view(incident_id)  # type: ignore[return-value]

    def get(self, incident_id: int) -> Incident | None:
        with self.lock:
            return self._view(incident_id)

    def incident_for_request(self, request_job: int) -> Incident | None:
        with self.lock:
            found = next((i for i, r in self.rows.items() if r.request_job == request_job), None)
            return self._view(found) if found is not None else None

    def recent(self, limit: int, env: str | None = None) -> list[Incident]:
        with self.lock:
            ids = sorted((i for i, r in self.rows.items() if env is None or r.incident.env == env), reverse=True)
            return [self._view(i) for i in ids[:limit]]  # type: ignore[misc]

    def incident_count(self, env: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.rows.values() if env is None or r.incident.env == env)

    def open_incidents(self) -> list[Incident]:
        with self.lock:
            return [self._view(i) for i in sorted(self.rows) if self.rows[i].incident.status.is_open]  # type: ignore[misc]

    def rolled_back_plans(self, env: str, limit: int = 100) -> list[PlanBase]:
        with self.lock:
            done = sorted((r.incident for r in self.rows.values()
                           if r.incident.env == env and r.incident.rolled_back_at is not None),
                          key=lambda i: (i.rolled_back_at, i.id), reverse=True)
            return [i.plan for i in done[:limit]]

    def last_rolled_back(self, drill: bool = False) -> Incident | None:
        with self.lock:
            done = [r.incident for r in self.rows.values()
                    if r.incident.rolled_back_at is not None and r.incident.drill == drill]
            return self._view(max(done, key=lambda i: i.rolled_back_at).id) if done else None  # type: ignore[arg-type, return-value]

    def status_counts(self) -> dict[str, int]:
        with self.lock:
            counts: dict[str, int] = {}
            for row in self.rows.values():
                counts[row.incident.status.value] = counts.get(row.incident.status.value, 0) + 1
                if row.incident.drill:
                    key = f"drill.{row.incident.status.value}"
                    counts[key] = counts.get(key, 0) + 1
            counts["dead_jobs"] = sum(1 for j in self.jobs.values() if j.status == "dead")
            counts["running_jobs"] = sum(1 for j in self.jobs.values() if j.status == "running")
            counts["due_jobs"] = sum(1 for j in self.jobs.values() if j.status == "due" and j.due_at <= self.clock.now())
            return counts

    def set_refs(self, incident_id: int, **refs: str) -> None:
        with self.lock:
            unknown = set(refs) - _FIELDS
            if unknown:
                raise ValueError(f"not incident fields: {sorted(unknown)}")
            self._set(incident_id, **refs)

    def set_checklist(self, incident_id: int, key: str, checked: bool) -> Incident | None:
        with self.lock:
            row = self.rows.get(incident_id)
            if row is None or key not in row.incident.checklist:
                return None
            self._set(incident_id, checklist={**row.incident.checklist, key: checked})
            return self._view(incident_id)

    def add_checklist(self, incident_id: int, keys: Sequence[str]) -> None:
        with self.lock:
            row = self.rows[incident_id]
            self._set(incident_id, checklist={**{k: False for k in keys}, **row.incident.checklist})

    def transition(self, incident_id: int, from_status: Sequence[Status], to_status: Status, *,
                   owner: str | None = None, **fields: Any) -> Incident | None:
        with self.lock:
            unknown = set(fields) - _FIELDS
            if unknown:
                raise ValueError(f"not incident fields: {sorted(unknown)}")
            row = self.rows.get(incident_id)
            if row is None or row.incident.status not in from_status or (owner is not None and row.exec_owner != owner):
                return None
            self._set(incident_id, status=to_status, **fields)
            return self._view(incident_id)

    def orphaned_requests(self, older_than: datetime) -> list[int]:
        with self.lock:
            return [i for i, r in sorted(self.rows.items()) if r.incident.status is Status.PENDING
                    and r.incident.root_ts is None and r.incident.created_at < older_than]

    def resolve(self, incident_id: int, resolution: Resolution, summary: Summary, status: Status,
                finished_at: datetime, follow_ups: Sequence[NewFollowUp] = ()) -> Incident | None:
        with self.lock:
            row = self.rows.get(incident_id)
            if row is None or row.incident.resolution is not None or \
                    row.incident.status not in (Status.MONITORING, Status.FAILED):
                return None
            self._set(incident_id, status=status, resolution=resolution, finished_at=finished_at)
            row.summary = summary
            self._cancel(incident_id, "monitor")
            self._insert_jobs(incident_id, [NewJob("post_summary", resolution.at, {})])
            self._insert_follow_ups(incident_id, follow_ups, resolution.at)
            return self._view(incident_id)

    def summary(self, incident_id: int) -> Summary | None:
        with self.lock:
            row = self.rows.get(incident_id)
            return row.summary if row else None

    # -- approvals ---------------------------------------------------------------------------

    def approve(self, incident_id: int, approver: str, plan_hash: str, at: datetime,
                required: Sequence[str] = (), announce: NewJob | None = None) -> ApprovalOutcome:
        with self.lock:
            row = self.rows.get(incident_id)
            if row is None:
                raise KeyError(incident_id)
            incident = row.incident
            recorded = decided = False
            ticked = all(incident.checklist.get(key) is True for key in required)
            if (incident.status is Status.PENDING and incident.plan_hash == plan_hash and incident.expires_at > at
                    and ticked):
                mine = [a for a, i in zip(self.approvals, self.approval_incidents, strict=True) if i == incident_id
                        and a.plan_hash == plan_hash]
                if all(a.approver != approver for a in mine):
                    self.approvals.append(Approval(approver, plan_hash, at))
                    self.approval_incidents.append(incident_id)
                    recorded = True
                    count = len(mine) + 1
                    self._audit(incident_id, approver, "approve", "ok", at, plan_hash=plan_hash, count=count,
                                needed=incident.approvals_needed)
                    if count >= incident.approvals_needed:
                        self._set(incident_id, status=Status.EXECUTING, decided_by=approver, decided_at=at)
                        row.exec_owner, row.lease_until = None, None
                        self._insert_jobs(incident_id, [NewJob("execute", at, {"plan_hash": plan_hash})])
                        self._audit(incident_id, "rollbot", "approved", "ok", at,
                                    approvers=[a.approver for a in mine] + [approver])
                        self._cancel(incident_id, "expire")
                        decided = True
                    if announce is not None:
                        self._insert_jobs(incident_id, [NewJob(announce.kind, announce.due_at,
                                                               {**announce.payload, "decided": decided})])
            return ApprovalOutcome(self._view(incident_id), recorded, decided)  # type: ignore[arg-type]

    def reopen(self, incident_id: int, owner: str, old_hash: str, plan: PlanBase,
               expires_at: datetime) -> Incident | None:
        with self.lock:
            row = self.rows.get(incident_id)
            if row is None or row.incident.status is not Status.EXECUTING or row.exec_owner != owner \
                    or row.incident.plan_hash != old_hash:
                return None
            self._set(incident_id, status=Status.PENDING, plan=plan, decided_by=None, decided_at=None,
                      expires_at=expires_at)
            row.exec_owner, row.lease_until = None, None
            self._insert_jobs(incident_id, [NewJob("expire", expires_at, {"plan_hash": plan.hash})])
            return self._view(incident_id)

    # -- executions --------------------------------------------------------------------------

    def claim_execution(self, incident_id: int, owner: str, lease: timedelta) -> bool:
        with self.lock:
            row = self.rows.get(incident_id)
            now = self.clock.now()
            if row is None or row.incident.status is not Status.EXECUTING or \
                    (row.lease_until is not None and row.lease_until >= now):
                return False
            row.exec_owner, row.lease_until = owner, now + lease
            self._cancel(incident_id, "execute")
            return True

    def renew_execution(self, incident_id: int, owner: str, lease: timedelta) -> bool:
        with self.lock:
            row = self.rows.get(incident_id)
            if row is None or row.incident.status is not Status.EXECUTING or row.exec_owner != owner:
                return False
            row.lease_until = max(row.lease_until or self.clock.now(), self.clock.now() + lease)
            return True

    def stale_executions(self) -> list[int]:
        with self.lock:
            now = self.clock.now()
            return [i for i, r in sorted(self.rows.items()) if r.incident.status is Status.EXECUTING
                    and r.lease_until is not None and r.lease_until < now]

    def mark_rolled_back(self, incident_id: int, owner: str, at: datetime) -> bool:
        with self.lock:
            row = self.rows.get(incident_id)
            if row is None or row.incident.status is not Status.EXECUTING or row.exec_owner != owner:
                return False
            self._set(incident_id, rolled_back_at=row.incident.rolled_back_at or at)
            return True

    def start_monitoring(self, incident_id: int, owner: str, verified_at: datetime, checklist: Sequence[str],
                         jobs: Sequence[NewJob]) -> Incident | None:
        with self.lock:
            row = self.rows.get(incident_id)
            if row is None or row.incident.status is not Status.EXECUTING or row.exec_owner != owner:
                return None
            self._set(incident_id, status=Status.MONITORING, verified_at=verified_at,
                      checklist={**{k: False for k in checklist}, **row.incident.checklist})
            self._insert_jobs(incident_id, jobs)
            return self._view(incident_id)

    # -- steps -------------------------------------------------------------------------------

    def start_step(self, incident_id: int, name: str, at: datetime) -> bool:
        with self.lock:
            if (incident_id, name) in self.step_runs:
                return False
            self.step_runs[(incident_id, name)] = StepRun(name, "running", at)
            return True

    def restart_step(self, incident_id: int, name: str, at: datetime) -> bool:
        with self.lock:
            step = self.step_runs.get((incident_id, name))
            if step is None:
                return False
            stale = step.status == "running" and step.started_at < at - STEP_STALE
            if step.status not in ("failed", "uncertain") and not stale:
                return False
            self.step_runs[(incident_id, name)] = replace(step, status="running", started_at=at, finished_at=None)
            return True

    def finish_step(self, incident_id: int, name: str, status: str, detail: str, at: datetime) -> None:
        with self.lock:
            step = self.step_runs.get((incident_id, name))
            if step is not None:
                self.step_runs[(incident_id, name)] = replace(step, status=status, detail=detail, finished_at=at)

    def note_step(self, incident_id: int, name: str, detail: str) -> None:
        with self.lock:
            step = self.step_runs.get((incident_id, name))
            if step is not None and step.status == "running":
                self.step_runs[(incident_id, name)] = replace(step, detail=detail)

    def begin_message(self, incident_id: int, key: str, at: datetime) -> MessageRecord:
        with self.lock:
            row = self.messages.get((incident_id, key))
            if row is None:
                self.messages[(incident_id, key)] = {"state": "posting", "ts": None, "since": at, "claimed": at}
                return MessageRecord("new", since=at)
            if row["state"] == "posted":
                return MessageRecord("posted", row["ts"], row["since"])
            if row["claimed"] is not None and row["claimed"] > at - MESSAGE_IN_FLIGHT:
                return MessageRecord("busy", since=row["since"])
            row["claimed"] = at
            return MessageRecord("doubt", since=row["since"])

    def message_posted(self, incident_id: int, key: str, ts: str) -> None:
        with self.lock:
            row = self.messages.setdefault((incident_id, key), {"since": self.clock.now()})
            row.update(state="posted", ts=ts, claimed=None)

    def message_unsettled(self, incident_id: int, key: str) -> None:
        with self.lock:
            row = self.messages.get((incident_id, key))
            if row is not None and row["state"] == "posting":
                row["claimed"] = None

    def message_not_posted(self, incident_id: int, key: str) -> None:
        with self.lock:
            if self.messages.get((incident_id, key), {}).get("state") == "posting":
                del self.messages[(incident_id, key)]

    def steps(self, incident_id: int) -> list[StepRun]:
        with self.lock:
            return sorted((s for (i, _), s in self.step_runs.items() if i == incident_id),
                          key=lambda s: (s.started_at, s.name))

    def incident_with_steps(self, incident_id: int) -> tuple[Incident, list[StepRun]] | None:
        with self.lock:
            incident = self._view(incident_id)
            return None if incident is None else (incident, self.steps(incident_id))

    # -- audit -------------------------------------------------------------------------------

    def audit(self, incident_id: int | None, actor: str, action: str, outcome: str, detail: dict[str, Any],
              at: datetime) -> None:
        with self.lock:
            self._audit(incident_id, actor, action, outcome, at, **detail)

    def audit_log(self, incident_id: int) -> list[AuditEntry]:
        with self.lock:
            return [e for e in self.entries if e.incident_id == incident_id]

    # -- jobs --------------------------------------------------------------------------------

    def schedule(self, incident_id: int | None, kind: str, due_at: datetime, payload: dict[str, Any]) -> None:
        with self.lock:
            self._insert_jobs(incident_id, [NewJob(kind, due_at, payload)])

    def claim_due(self, now: datetime, worker: str, limit: int = 20, executions: int | None = None) -> list[DueJob]:
        with self.lock:
            for job in self.jobs.values():
                if job.status == "running" and job.lease_until and job.lease_until < now \
                        and job.attempts >= MAX_JOB_ATTEMPTS:
                    job.status, job.outcome = "dead", "too many attempts"
            ready = [j for j in self.jobs.values() if (j.status == "due" and j.due_at <= now)
                     or (j.status == "running" and j.lease_until is not None and j.lease_until < now)]
            claimed = sorted(ready, key=lambda j: claim_order(j.view()))
            if executions is None:
                claimed = claimed[:limit]
            else:
                claimed = ([j for j in claimed if j.kind == "execute"][:executions]
                           + [j for j in claimed if j.kind != "execute"][:limit])
            for job in claimed:
                job.status, job.attempts, job.lease_until = "running", job.attempts + 1, now + JOB_LEASE
            about = {j.id: self.rows[j.incident_id].incident for j in claimed if j.incident_id in self.rows}
            return [replace(j.view(), incident_kind=about[j.id].kind if j.id in about else None,
                            incident_env=about[j.id].env if j.id in about else None) for j in claimed]

    def finish_job(self, job_id: int, outcome: str) -> None:
        with self.lock:
            self.jobs[job_id].status, self.jobs[job_id].outcome = "done", outcome

    def retry_job(self, job_id: int, due_at: datetime, outcome: str) -> None:
        with self.lock:
            job = self.jobs[job_id]
            job.status = "dead" if job.attempts >= MAX_JOB_ATTEMPTS else "due"
            job.due_at, job.outcome, job.lease_until = due_at, outcome, None

    def cancel_jobs(self, incident_id: int, kind: str) -> None:
        with self.lock:
            self._cancel(incident_id, kind)

    def pending_jobs(self, incident_id: int) -> list[DueJob]:
        with self.lock:
            return [j.view() for j in sorted(self.jobs.values(), key=lambda j: j.due_at)
                    if j.incident_id == incident_id and j.status == "due"]
