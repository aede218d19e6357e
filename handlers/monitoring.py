"""Step 5 and the worker's due work: monitoring reminders, approval expiry, stale executions."""

from __future__ import annotations

from handlers.approvals import expire
from handlers.execution import resume_stale
from handlers.model import Status
from handlers.ports import DueJob
from handlers.services import Services, log


def remind(svc: Services, incident_id: int, index: int, total: int) -> bool:
    """Post the monitoring reminder with fresh health results; False if no longer monitoring."""
    incident = svc.store.get(incident_id)
    if incident is None or incident.status is not Status.MONITORING:
        return False
    env = svc.policy.environments[incident.env]
    health = svc.health.check(env.health_checks)
    healthy = all(h.ok for h in health)
    svc.audit(incident_id, "rollbot", "health_check", "ok" if healthy else "failed",
              phase=f"monitor {index}/{total}", results=[h.__dict__ for h in health])
    svc.notifier.reminder(incident, index, total, health)
    svc.audit(incident_id, "rollbot", "remind", "ok", index=index, total=total)
    return True


def run_job(svc: Services, job: DueJob) -> str:
    """Run one claimed due job; returns the outcome recorded on the row."""
    if job.incident_id is None:
        return "skipped"
    if job.kind == "expire":
        return "expired" if expire(svc, job.incident_id) else "noop"
    if job.kind == "monitor":
        done = remind(svc, job.incident_id, int(job.payload["index"]), int(job.payload["total"]))
        return "reminded" if done else "noop"
    log.warning("unknown job kind %s", job.kind)
    return "unknown"


def tick(svc: Services, worker: str) -> int:
    """One scheduler tick: claim due rows (SKIP LOCKED), run them, resume stale executions."""
    ran = 0
    for job in svc.store.claim_due(svc.clock.now(), worker):
        try:
            outcome = run_job(svc, job)
        except Exception:
            log.exception("job %s failed", job.id, extra={"incident": job.incident_id})
            outcome = "error"
        svc.store.finish_job(job.id, outcome)
        ran += 1
    resume_stale(svc)
    return ran
