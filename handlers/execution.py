"""Steps 3-4 of the flow: execute an approved rollback exactly once, then verify it by reading
the provider back and running the health checks.

Exactly once rests on an execution lease in Postgres: the approval that completes the quorum
takes it in the same transaction that moves the incident to EXECUTING; the executor renews it
before every side effect and while it waits; only when it has run out (the process died) may
the worker take it over, and a takeover reads Vercel back before it calls anything.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from handlers.code import already_applied, describe, rollback_once, wait_for_alias
from handlers.model import Incident, Status
from handlers.ports import NewJob, ProviderError
from handlers.runbook import NEXT_STEP_ON_FAILURE, POST_CHECKLIST
from handlers.services import Services, log

STEP_ROLLBACK = "vercel.rollback"
STEP_ALIAS = "vercel.alias"
STEP_VERIFY = "verify"
EXECUTION_STEPS = (STEP_ROLLBACK, STEP_ALIAS, STEP_VERIFY)
# Longer than the slowest single Vercel call can block (bounded retries in the adapter).
LEASE = timedelta(minutes=2)


class LeaseLost(Exception):
    """Another executor took over (this one stalled past its lease): stop without acting."""


class RollbackFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def new_owner() -> str:
    return uuid.uuid4().hex


def execute(svc: Services, incident_id: int, owner: str, *, resume: bool = False) -> Incident | None:
    """Run the rollback of an EXECUTING incident while holding its lease.

    ``owner`` is the lease token: the one the deciding approval took, or (``resume=True``) a new
    token with which the worker takes over an expired lease.
    """
    if resume:
        if not svc.store.claim_execution(incident_id, owner, LEASE):
            return None
        svc.audit(incident_id, "rollbot", "execute.resume", "ok")
    elif not svc.store.renew_execution(incident_id, owner, LEASE):
        return None
    incident = svc.store.get(incident_id)
    if incident is None or incident.status is not Status.EXECUTING:
        return None
    try:
        _roll_back(svc, incident, owner)
    except LeaseLost:
        svc.audit(incident_id, "rollbot", "execute", "lease_lost")
        return None
    except RollbackFailed as failure:
        return fail(svc, incident_id, failure.message, owner)
    except Exception as error:  # unexpected: fail loudly, keep the record
        log.exception("execution crashed", extra={"incident": incident_id})
        if not _took_effect(svc, incident):
            return fail(svc, incident_id, f"unexpected error ({type(error).__name__}); see the bot's logs.", owner)
    if not svc.store.mark_rolled_back(incident_id, owner, svc.clock.now()):
        return None  # fenced: another executor owns it now
    return verify(svc, incident_id, owner)


def _roll_back(svc: Services, incident: Incident, owner: str) -> None:
    project, target = incident.plan.target, incident.plan.to_ref

    def hold() -> None:
        if not svc.store.renew_execution(incident.id, owner, LEASE):
            raise LeaseLost()

    def before_send() -> None:
        hold()  # a send only ever happens under a freshly renewed lease
        svc.audit(incident.id, "rollbot", STEP_ROLLBACK, "attempt", project=project, to=target)

    svc.store.start_step(incident.id, STEP_ROLLBACK, svc.clock.now())  # no-op on a resumed run
    _progress(svc, incident.id)
    try:
        state = svc.code.alias_state(project)
        svc.audit(incident.id, "rollbot", "vercel.read_alias", "ok", production=state.production_id,
                  job_status=state.job_status, job_to=state.job_to)
        if already_applied(state, target):
            svc.audit(incident.id, "rollbot", STEP_ROLLBACK, "skipped", why="production already serves the target")
        elif state.production_id != incident.plan.from_ref:
            raise RollbackFailed(
                f"production moved to `{state.production_id}` after {incident.ref} was approved "
                f"(the approved plan was `{incident.plan.from_ref}` → `{target}`); nothing was changed. "
                "Request the rollback again."
            )
        else:
            description = f"{incident.ref}: {incident.reason or 'rollback'}"[:200]
            result = rollback_once(svc.code, project, target, description, hold=before_send)
            svc.audit(incident.id, "rollbot", STEP_ROLLBACK, "ok", project=project, to=target, result=result)
        svc.store.finish_step(incident.id, STEP_ROLLBACK, "ok",
                              f"requested rollback to {describe(incident.plan.to_deployment)}", svc.clock.now())
        svc.store.start_step(incident.id, STEP_ALIAS, svc.clock.now())
        _progress(svc, incident.id)
        state = wait_for_alias(svc.code, project, target, on_poll=hold)
        svc.audit(incident.id, "rollbot", STEP_ALIAS, state.job_status or "unknown", production=state.production_id)
        if state.job_status == "failed":
            raise RollbackFailed("Vercel reported the alias job as failed; production did not move.")
    except ProviderError as error:
        svc.audit(incident.id, "rollbot", "vercel", "error", error=error.message, uncertain=error.uncertain)
        if not _took_effect(svc, incident):
            raise RollbackFailed(error.message) from None
        svc.audit(incident.id, "rollbot", STEP_ROLLBACK, "ok", why="took effect despite the error (read back)")
        svc.store.finish_step(incident.id, STEP_ROLLBACK, "ok", "took effect (read back after an error)",
                              svc.clock.now())
    svc.store.start_step(incident.id, STEP_ALIAS, svc.clock.now())
    svc.store.finish_step(incident.id, STEP_ALIAS, "ok", "production alias moved", svc.clock.now())


def _took_effect(svc: Services, incident: Incident) -> bool:
    """After an error, read Vercel back: does production serve the target after all?"""
    try:
        state = svc.code.alias_state(incident.plan.target)
        if state.job_to == incident.plan.to_ref and state.job_status in ("pending", "in-progress"):
            state = wait_for_alias(svc.code, incident.plan.target, incident.plan.to_ref, timeout=60)
    except ProviderError:
        return False
    return state.production_id == incident.plan.to_ref


def verify(svc: Services, incident_id: int, owner: str) -> Incident | None:
    """Read back that production serves the target, run the health checks, start monitoring."""
    incident = svc.store.get(incident_id)
    assert incident is not None
    env = svc.policy.environments[incident.env]
    svc.store.start_step(incident_id, STEP_VERIFY, svc.clock.now())
    _progress(svc, incident_id)
    try:
        state = svc.code.alias_state(incident.plan.target)
    except ProviderError as error:
        return fail(svc, incident_id, f"could not read Vercel back: {error.message}", owner)
    if state.production_id != incident.plan.to_ref:
        return fail(
            svc, incident_id,
            f"read-back: production serves `{state.production_id}`, not `{incident.plan.to_ref}`.", owner,
        )
    health = svc.health.check(env.health_checks)
    healthy = all(h.ok for h in health)
    svc.audit(incident_id, "rollbot", "health_check", "ok" if healthy else "failed",
              phase="verify", results=[h.__dict__ for h in health])
    now = svc.clock.now()
    detail = "production serves the target; " + (
        f"{sum(h.ok for h in health)}/{len(health)} health checks pass" if health else "no health checks configured"
    )
    total = len(env.monitor)
    reminders = [NewJob("monitor", now + offset, {"index": index, "total": total})
                 for index, offset in enumerate(env.monitor, start=1)]
    # One transaction: MONITORING, the post-rollback checklist and every reminder, or none of it.
    monitoring = svc.store.start_monitoring(incident_id, owner, now, [key for key, _ in POST_CHECKLIST], reminders)
    if monitoring is None:  # fenced: another executor owns it now
        return svc.store.get(incident_id)
    svc.store.finish_step(incident_id, STEP_VERIFY, "ok" if healthy else "failed", detail, now)
    svc.audit(incident_id, "rollbot", "verify", "ok" if healthy else "unhealthy", production=state.production_id)
    _progress(svc, incident_id)
    svc.notifier.verification(monitoring, state, health, healthy)
    svc.notifier.refresh_root(monitoring, svc.store.steps(incident_id))
    return monitoring


def fail(svc: Services, incident_id: int, error: str, owner: str) -> Incident | None:
    """Mark the incident failed, tell the thread what went wrong and the runbook's next step.
    Only the lease holder can (a stale executor is fenced off). The lock is released by the
    status change; nothing in the audit log is lost; Slack trouble never raises here."""
    now = svc.clock.now()
    failed = svc.store.transition(
        incident_id, [Status.EXECUTING], Status.FAILED, owner=owner, failure=error, finished_at=now
    )
    svc.audit(incident_id, "rollbot", "execute", "failed", error=error)
    if failed is None:
        return svc.store.get(incident_id)
    for step in svc.store.steps(incident_id):
        if step.status == "running":
            svc.store.finish_step(incident_id, step.name, "failed", error, now)
    svc.store.cancel_jobs(incident_id, "monitor")
    _progress(svc, incident_id)
    svc.notifier.failure(failed, error, NEXT_STEP_ON_FAILURE[failed.kind])
    svc.notifier.refresh_root(failed, svc.store.steps(incident_id))
    return failed


MAX_RESUMES = 3


def resume_stale(svc: Services) -> list[int]:
    """Worker: executions whose lease ran out (the executor died or stalled) are taken over.
    One that keeps crashing is failed after MAX_RESUMES takeovers instead of looping forever."""
    resumed = []
    for incident_id in svc.store.stale_executions():
        owner = new_owner()
        tries = sum(1 for e in svc.store.audit_log(incident_id) if e.action == "execute.resume")
        try:
            if tries >= MAX_RESUMES:
                if svc.store.claim_execution(incident_id, owner, LEASE):
                    fail(svc, incident_id, f"gave up after {tries} attempts to resume the execution; "
                         "check Vercel by hand.", owner)
                continue
            if execute(svc, incident_id, owner, resume=True) is not None:
                resumed.append(incident_id)
        except Exception:
            log.exception("resuming failed", extra={"incident": incident_id})
    return resumed


def _progress(svc: Services, incident_id: int) -> None:
    incident = svc.store.get(incident_id)
    assert incident is not None
    steps = [s for s in svc.store.steps(incident_id) if s.name in EXECUTION_STEPS]
    ts = svc.notifier.progress(incident, steps)
    if ts and ts != incident.progress_ts:
        svc.store.set_refs(incident_id, progress_ts=ts)
