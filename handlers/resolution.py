"""Step 6 of the flow: resolve -> root cause and lessons -> post-incident summary."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from handlers.model import Incident, Resolution, Status
from handlers.services import Services
from handlers.summary import build_summary

RESOLVABLE = (Status.MONITORING, Status.FAILED, Status.EXECUTING)


def resolvable(svc: Services, user: str, incident_id: int | None) -> Incident:
    """The incident ``user`` may resolve now (the newest open one of theirs when no id is given)."""
    if incident_id is None:
        candidates = [i for i in svc.store.open_incidents() if i.status in (Status.MONITORING,)]
        if not candidates:
            raise svc.refuse(None, user, "resolve", "there is no incident waiting to be resolved.")
        incident = max(candidates, key=lambda i: i.created_at)
    else:
        found = svc.store.get(incident_id)
        if found is None:
            raise svc.refuse(incident_id, user, "resolve", f"RB-{incident_id} does not exist.")
        incident = found
    if incident.status not in (Status.MONITORING, Status.FAILED) or incident.resolution is not None:
        raise svc.refuse(incident.id, user, "resolve", f"{incident.ref} is {incident.status.value}; only a "
                         "monitored or failed rollback can be resolved.")
    refusal = svc.roles.resolve_refusal(user, incident)
    if refusal:
        raise svc.refuse(incident.id, user, "resolve", refusal)
    return incident


def resolve(svc: Services, user: str, incident_id: int, root_cause: str, lessons: str) -> tuple[Incident, dict[str, Any]]:
    """Close the incident, store and post the summary. Only one resolve wins (conditional write)."""
    incident = resolvable(svc, user, incident_id)
    now = svc.clock.now()
    resolution = Resolution(resolved_by=user, root_cause=root_cause.strip(), lessons=lessons.strip(), at=now)
    final = Status.RESOLVED if incident.status is Status.MONITORING else Status.FAILED
    projected = replace(incident, status=final, resolution=resolution, finished_at=incident.finished_at or now)
    summary = build_summary(projected, svc.store.steps(incident_id), svc.store.audit_log(incident_id))
    stored = svc.store.resolve(incident_id, resolution, summary, final, projected.finished_at or now)
    if stored is None:
        raise svc.refuse(incident_id, user, "resolve", f"{incident.ref} was resolved meanwhile.")
    svc.audit(incident_id, user, "resolve", "ok", status=final.value)
    svc.store.cancel_jobs(incident_id, "monitor")
    ts = svc.notifier.summary(stored, summary)
    if ts:
        svc.store.set_refs(incident_id, summary_ts=ts)
    svc.notifier.refresh_root(stored, svc.store.steps(incident_id))
    return stored, summary
