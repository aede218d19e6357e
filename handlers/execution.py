"""Steps 3-4 of the flow: execute an approved rollback exactly once, then verify it by reading
the provider back and running the health checks."""

from __future__ import annotations

from datetime import timedelta

from handlers.code import already_applied, describe, rollback_once, wait_for_alias
from handlers.model import Incident, Status
from handlers.ports import ProviderError
from handlers.runbook import NEXT_STEP_ON_FAILURE
from handlers.services import Services, log

STEP_ROLLBACK = "vercel.rollback"
STEP_ALIAS = "vercel.alias"
STEP_VERIFY = "verify"
STALE_EXECUTION = timedelta(minutes=5)


def execute(svc: Services, incident_id: int, *, resume: bool = False) -> Incident | None:
    """Run the rollback of an EXECUTING incident.

    The provider call is guarded by a unique step row: only the first caller makes it. A
    resumed execution (after a crash) reads Vercel back before it calls anything again.
    """
    incident = svc.store.get(incident_id)
    if incident is None or incident.status is not Status.EXECUTING:
        return None
    project, target = incident.plan.target, incident.plan.to_ref
    try:
        first = svc.store.start_step(incident_id, STEP_ROLLBACK, svc.clock.now())
        if not first and not resume:
            return None  # someone else is executing it
        _progress(svc, incident_id)
        state = svc.code.alias_state(project)
        svc.audit(incident_id, "rollbot", "vercel.read_alias", "ok", production=state.production_id,
                  job_status=state.job_status)
        if state.production_id not in (incident.plan.from_ref, target) and not already_applied(state, target):
            raise ProviderError(
                f"production moved to `{state.production_id}` after {incident.ref} was approved "
                f"(the approved plan was `{incident.plan.from_ref}` → `{target}`); nothing was changed. "
                "Request the rollback again."
            )
        if already_applied(state, target):
            svc.audit(incident_id, "rollbot", STEP_ROLLBACK, "skipped", why="production already serves the target")
        else:
            result = rollback_once(svc.code, project, target, f"{incident.ref}: {incident.reason or 'rollback'}"[:200])
            svc.audit(incident_id, "rollbot", STEP_ROLLBACK, "ok", project=project, to=target, result=result)
        svc.store.finish_step(incident_id, STEP_ROLLBACK, "ok", f"requested rollback to {describe(incident.plan.to_deployment)}", svc.clock.now())

        svc.store.start_step(incident_id, STEP_ALIAS, svc.clock.now())
        _progress(svc, incident_id)
        state = wait_for_alias(svc.code, project, target)
        svc.audit(incident_id, "rollbot", STEP_ALIAS, state.job_status or "unknown", production=state.production_id)
        if state.job_status == "failed":
            raise ProviderError("Vercel reported the alias job as failed; production did not move.")
        svc.store.finish_step(incident_id, STEP_ALIAS, "ok", "production alias moved", svc.clock.now())
    except ProviderError as error:
        return fail(svc, incident_id, error.message)
    except Exception as error:  # unexpected: still fail loudly and keep the record
        log.exception("execution crashed", extra={"incident": incident_id})
        return fail(svc, incident_id, f"unexpected error ({type(error).__name__}); see the bot's logs.")
    rolled_back = svc.store.transition(incident_id, [Status.EXECUTING], Status.EXECUTING,
                                       rolled_back_at=svc.clock.now())
    assert rolled_back is not None
    return verify(svc, incident_id)


def verify(svc: Services, incident_id: int) -> Incident | None:
    """Read back that production serves the target, run the health checks, start monitoring."""
    incident = svc.store.get(incident_id)
    assert incident is not None
    env = svc.policy.environments[incident.env]
    svc.store.start_step(incident_id, STEP_VERIFY, svc.clock.now())
    _progress(svc, incident_id)
    try:
        state = svc.code.alias_state(incident.plan.target)
    except ProviderError as error:
        return fail(svc, incident_id, f"could not read Vercel back: {error.message}")
    if state.production_id != incident.plan.to_ref:
        return fail(
            svc, incident_id,
            f"read-back: production serves `{state.production_id}`, not `{incident.plan.to_ref}`.",
        )
    health = svc.health.check(env.health_checks)
    healthy = all(h.ok for h in health)
    svc.audit(incident_id, "rollbot", "health_check", "ok" if healthy else "failed",
              phase="verify", results=[h.__dict__ for h in health])
    now = svc.clock.now()
    detail = "production serves the target; " + (
        f"{sum(h.ok for h in health)}/{len(health)} health checks pass" if health else "no health checks configured"
    )
    svc.store.finish_step(incident_id, STEP_VERIFY, "ok" if healthy else "failed", detail, now)
    monitoring = svc.store.transition(
        incident_id, [Status.EXECUTING], Status.MONITORING, verified_at=now
    )
    if monitoring is None:
        return svc.store.get(incident_id)
    total = len(env.monitor)
    for index, offset in enumerate(env.monitor, start=1):
        svc.store.schedule(incident_id, "monitor", now + offset, {"index": index, "total": total})
    svc.audit(incident_id, "rollbot", "verify", "ok" if healthy else "unhealthy", production=state.production_id)
    _progress(svc, incident_id)
    svc.notifier.verification(monitoring, state, health, healthy)
    svc.notifier.refresh_root(monitoring, svc.store.steps(incident_id))
    return monitoring


def fail(svc: Services, incident_id: int, error: str) -> Incident | None:
    """Mark the incident failed, tell the thread what went wrong and the runbook's next step.
    The lock is released by the status change; nothing in the audit log is lost."""
    now = svc.clock.now()
    for step in svc.store.steps(incident_id):
        if step.status == "running":
            svc.store.finish_step(incident_id, step.name, "failed", error, now)
    failed = svc.store.transition(
        incident_id, [Status.EXECUTING, Status.PENDING], Status.FAILED, failure=error, finished_at=now
    )
    svc.audit(incident_id, "rollbot", "execute", "failed", error=error)
    if failed is None:
        return svc.store.get(incident_id)
    svc.store.cancel_jobs(incident_id, "monitor")
    _progress(svc, incident_id)
    svc.notifier.failure(failed, error, NEXT_STEP_ON_FAILURE[failed.kind])
    svc.notifier.refresh_root(failed, svc.store.steps(incident_id))
    return failed


def resume_stale(svc: Services) -> list[int]:
    """Worker: executions left EXECUTING by a crashed process are resumed (read back first)."""
    resumed = []
    cutoff = svc.clock.now() - STALE_EXECUTION
    for incident in svc.store.open_incidents():
        if incident.status is Status.EXECUTING and incident.decided_at and incident.decided_at < cutoff:
            svc.audit(incident.id, "rollbot", "execute.resume", "ok")
            execute(svc, incident.id, resume=True)
            resumed.append(incident.id)
    return resumed


def _progress(svc: Services, incident_id: int) -> None:
    incident = svc.store.get(incident_id)
    assert incident is not None
    ts = svc.notifier.progress(incident, svc.store.steps(incident_id))
    if ts and ts != incident.progress_ts:
        svc.store.set_refs(incident_id, progress_ts=ts)
