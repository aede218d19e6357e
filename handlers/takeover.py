"""Executions whose lease ran out (the executor died or stalled), taken over by the worker: the
kind reads the provider back before it acts again; one that keeps crashing is failed instead."""

from __future__ import annotations

from handlers.execution import execute, fail, new_owner
from handlers.model import Incident
from handlers.services import Services, log

MAX_RESUMES = 3


def stale_to_resume(svc: Services) -> list[int]:
    """Executions whose lease ran out (the executor died or stalled), for the worker to take over
    on its pool; one that keeps crashing is failed after MAX_RESUMES takeovers instead."""
    resumable = []
    for incident_id in svc.store.stale_executions():
        tries = sum(1 for e in svc.store.audit_log(incident_id) if e.action == "execute.resume")
        if tries < MAX_RESUMES:
            resumable.append(incident_id)
            continue
        incident = svc.store.get(incident_id)
        owner = new_owner()
        if incident and svc.store.claim_execution(incident_id, owner, svc.kinds[incident.kind].lease):
            fail(svc, incident_id, f"gave up after {tries} attempts to resume the execution; "
                 "check the provider by hand.", owner)
    return resumable


def resume(svc: Services, incident_id: int) -> Incident | None:
    """Take over one stale execution (None when another executor got there first)."""
    try:
        return execute(svc, incident_id, resume=True)
    except Exception:
        log.exception("resuming failed", extra={"incident": incident_id})
        return None


def resume_stale(svc: Services) -> list[int]:
    """Every stale execution taken over, one after another (the worker runs them side by side)."""
    return [i for i in stale_to_resume(svc) if resume(svc, i) is not None]
