"""Row <-> domain object mapping for the Postgres store."""

from __future__ import annotations

from typing import Any

from handlers.kind import PlanLoader
from handlers.model import Approval, Incident, Resolution, Status, StepRun
from handlers.ports import AuditEntry, DueJob

INCIDENT_FIELDS = frozenset({
    "channel", "root_ts", "progress_ts", "summary_ts", "decided_by", "decided_at", "decision_note",
    "rolled_back_at", "verified_at", "finished_at", "failure",
})


def incident_from_row(row: dict[str, Any], approvals: list[dict[str, Any]], load_plan: PlanLoader) -> Incident:
    resolution = None
    if row["resolved_at"] is not None:
        resolution = Resolution(
            resolved_by=row["resolved_by"], root_cause=row["root_cause"] or "", lessons=row["lessons"] or "",
            at=row["resolved_at"],
        )
    return Incident(
        id=row["id"],
        kind=row["kind"],
        env=row["env"],
        status=Status(row["status"]),
        requester=row["requester"],
        reason=row["reason"],
        plan=load_plan(row["plan"]),
        created_at=row["created_at"],
        approvals_needed=row["approvals_needed"],
        expires_at=row["expires_at"],
        checklist=dict(row["checklist"]),
        approvals=tuple(Approval(a["approver"], a["plan_hash"], a["at"]) for a in approvals),
        channel=row["channel"],
        root_ts=row["root_ts"],
        progress_ts=row["progress_ts"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        decision_note=row["decision_note"],
        executed_at=row["decided_at"] if row["status"] != "pending" else None,
        rolled_back_at=row["rolled_back_at"],
        verified_at=row["verified_at"],
        finished_at=row["finished_at"],
        failure=row["failure"],
        resolution=resolution,
        summary_ts=row["summary_ts"],
        drill=bool(row.get("drill", False)),
        issue=row.get("issue"),
        severity=row.get("severity"),
    )


def step_from_row(row: dict[str, Any]) -> StepRun:
    return StepRun(row["name"], row["status"], row["started_at"], row["finished_at"], row["detail"])


def audit_from_row(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(row["at"], row["incident_id"], row["actor"], row["action"], row["outcome"], row["detail"])


def job_from_row(row: dict[str, Any]) -> DueJob:
    return DueJob(row["id"], row["incident_id"], row["kind"], row["due_at"], row["payload"], row["attempts"],
                  row.get("incident_kind"), row.get("incident_env"))
