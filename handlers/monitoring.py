"""Step 5 and the worker's due work: monitoring reminders, approval expiry, summary delivery,
stale executions, interrupted requests. A job that fails for a passing reason is retried with
backoff; a message that may already have been posted is read back, never posted twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial

from structlog.contextvars import bind_contextvars

from handlers import drills, follow_ups
from handlers.approvals import ANNOUNCE_JOB, announce_job, expire
from handlers.execution import execute
from handlers.kind import Maintained, RollbackKind
from handlers.model import Status
from handlers.ports import DeliveryFailed, DueJob
from handlers.request_jobs import REQUEST_JOB, plan_request
from handlers.requests import adopt_root
from handlers.resolution import deliver_summary
from handlers.services import Services, bind_incident, log
from handlers.store import FOLLOW_UP_JOB
from handlers.takeover import stale_to_resume


class RetryLater(Exception):
    """The job could not run now (Slack refused, say); run it again later."""


def remind(svc: Services, incident_id: int, index: int, total: int) -> str:
    """Post the monitoring reminder with fresh health results, once."""
    incident = svc.store.get(incident_id)
    if incident is None or incident.status is not Status.MONITORING:
        return "noop"
    bind_incident(incident)
    env = svc.policy.environments[incident.env]
    health = svc.health.check(env.health_checks)  # before the guard: a crash here loses nothing
    healthy = all(h.ok for h in health)
    step = f"monitor.{index}"
    now = svc.clock.now()
    if not (svc.store.start_step(incident_id, step, now) or svc.store.restart_step(incident_id, step, now)):
        if any(s.name == step and s.status == "ok" for s in svc.store.steps(incident_id)):
            return "already sent"
        raise RetryLater(f"{step} is being posted by another runner")  # or its runner died: look again later
    try:
        svc.notifier.reminder(incident, index, total, health)
    except DeliveryFailed as error:
        # Retried later either way: a post whose outcome is unknown is read back before any new one.
        svc.store.finish_step(incident_id, step, "failed" if error.definite else "uncertain", str(error), now)
        svc.audit(incident_id, "rollbot", "remind", "failed", index=index, error=str(error), definite=error.definite)
        raise RetryLater(str(error)) from None
    svc.store.finish_step(incident_id, step, "ok", f"{sum(h.ok for h in health)}/{len(health)} healthy", now)
    svc.audit(incident_id, "rollbot", "health_check", "ok" if healthy else "failed",
              phase=f"monitor {index}/{total}", results=[h.__dict__ for h in health])
    svc.audit(incident_id, "rollbot", "remind", "ok", index=index, total=total)
    if index == total and _stable(svc, incident_id) and svc.tick(incident_id, "post_stable"):
        svc.redraw_root(incident_id)
    return "reminded"


def _stable(svc: Services, incident_id: int) -> bool:
    """Every health check of the verification and of every monitoring round passed."""
    rounds = [e for e in svc.store.audit_log(incident_id) if e.action == "health_check"]
    return bool(rounds) and all(e.outcome == "ok" for e in rounds)


def run_job(svc: Services, job: DueJob) -> str:
    """Run one claimed due job; returns the outcome recorded on the row."""
    if job.kind == REQUEST_JOB:
        return plan_request(svc, job)
    if job.incident_id is None:
        return "skipped"
    if job.kind == "execute":
        return "executed" if execute(svc, job.incident_id) is not None else "noop"
    if job.kind == ANNOUNCE_JOB:
        return announce_job(svc, job.incident_id, job.payload)
    if job.kind == "expire":
        return "expired" if expire(svc, job.incident_id) else "noop"
    if job.kind == "monitor":
        return remind(svc, job.incident_id, int(job.payload["index"]), int(job.payload["total"]))
    if job.kind == FOLLOW_UP_JOB:
        outcome = follow_ups.remind(svc, int(job.payload["follow_up"]), int(job.payload["round"]))
        if outcome in ("retry", "wait"):
            raise RetryLater("Slack did not take the follow-up reminder" if outcome == "retry"
                             else "the summary it links to is not posted yet")
        return outcome
    if job.kind == "post_summary":
        outcome = deliver_summary(svc, job.incident_id)
        if outcome == "retry":
            raise RetryLater("Slack did not take the summary")
        return outcome
    log.warning("unknown job kind %s", job.kind)
    return "unknown"


def process(svc: Services, job: DueJob, passing: Callable[[Exception], bool] = lambda error: False) -> str:
    """Run one claimed job and record how it ended: done, or due again later with backoff.
    ``passing`` tells an outage that passes (the database restarting) from a defect: the first
    is one line in the log, the second a traceback."""
    # The job's lines name it (and its incident, its user); the worker runs each job in a fresh context.
    about = {"incident": f"RB-{job.incident_id}", "kind": job.incident_kind, "env": job.incident_env}
    user = job.payload.get("user")
    bind_contextvars(job=job.kind, job_id=job.id, **{k: v for k, v in about.items() if job.incident_id and v},
                     **({"user": user} if isinstance(user, str) else {}))
    try:
        outcome = run_job(svc, job)
    except Exception as error:
        if passing(error):
            log.warning("job %s (%s) could not run now, retrying: %s", job.id, job.kind, type(error).__name__,
                        extra={"incident": job.incident_id})
        elif not isinstance(error, RetryLater):
            log.exception("job %s failed", job.id, extra={"incident": job.incident_id})
        backoff = timedelta(seconds=min(30 * 2 ** min(job.attempts - 1, 5), 600))
        svc.store.retry_job(job.id, svc.clock.now() + backoff, f"retry: {type(error).__name__}")
        svc.telemetry.job_finished(job.kind, "retry")
        return "retry"
    svc.store.finish_job(job.id, outcome)
    svc.telemetry.job_finished(job.kind, "done")
    return outcome


def housekeeping(svc: Services) -> list[int]:
    """What the leading worker checks every tick besides due jobs. Returns the executions whose
    lease ran out, for the worker to take over on its pool (never on the tick's own thread)."""
    try:
        settle_orphans(svc)
    finally:  # an orphan that cannot be settled must not keep a stalled rollback from being taken over
        resumable = stale_to_resume(svc)
    return resumable


def maintenance(svc: Services) -> list[tuple[str, Callable[[], None]]]:
    """The standing work: the kinds' (scheduled env-var snapshots), one task per kind and
    environment, and the drill and review reminders (``[drills] channel``); keyed so the worker
    never runs the same one twice at once."""
    tasks: list[tuple[str, Callable[[], None]]] = [
        (f"{kind.name}:{name}", partial(_maintain, svc, kind, name))
        for kind in svc.kinds if isinstance(kind, Maintained) for name in svc.policy.environments]
    if svc.policy.drills.channel:
        tasks.append(("drills:remind", partial(_remind_standing, svc)))
    return tasks


def _remind_standing(svc: Services) -> None:
    try:
        drills.remind(svc)
    except Exception as error:  # a store outage: the next tick tries again
        log.warning("drill and review reminders failed, retrying next tick: %s", type(error).__name__)


def _maintain(svc: Services, kind: RollbackKind, env_name: str) -> None:
    assert isinstance(kind, Maintained)
    try:
        done = kind.maintain(env_name, svc.policy.environments[env_name])
    except Exception as error:  # a provider or store outage: the next tick tries again
        log.warning("%s upkeep of %s failed, retrying next tick: %s", kind.name, env_name,
                    getattr(error, "message", None) or type(error).__name__)
        return
    if done:
        svc.audit(None, "rollbot", f"{kind.name}.maintain", "ok", env=env_name, result=done)


ORPHAN_AFTER = timedelta(minutes=2)


def settle_orphans(svc: Services) -> dict[int, str]:
    """A request whose root message was never recorded (its process died mid-post, or Slack never
    confirmed the post): if Slack has the message, adopt it and carry on; if it certainly does
    not, close the request (failed) so the environment is not blocked, and tell the requester.
    While Slack cannot say, ask again next tick. Returns what became of each."""
    settled: dict[int, str] = {}
    for incident_id in svc.store.orphaned_requests(svc.clock.now() - ORPHAN_AFTER):
        try:
            settled[incident_id] = _settle_orphan(svc, incident_id)
        except Exception:  # one bad orphan must not stop the others (nor the takeovers after them)
            log.exception("settling an interrupted request failed; trying again next tick",
                          extra={"incident": incident_id})
            settled[incident_id] = "error"
    return settled


def _settle_orphan(svc: Services, incident_id: int) -> str:
    incident = svc.store.get(incident_id)
    if incident is None or incident.status is not Status.PENDING:
        return "gone"
    try:
        found = svc.notifier.find_root(incident)
    except DeliveryFailed as error:
        log.warning("%s: cannot tell yet whether its root message exists: %s", incident.ref, error,
                    extra={"incident": incident_id})
        return "unknown"
    if found:
        adopt_root(svc, incident_id, *found, "adopted")
        svc.redraw_root(incident_id)
        return "adopted"
    if not svc.store.transition(incident_id, [Status.PENDING], Status.FAILED, finished_at=svc.clock.now(),
                                failure="the request was interrupted before it reached Slack"):
        return "gone"
    svc.audit(incident_id, "rollbot", "request", "failed", reason="interrupted before its Slack message")
    channel = svc.policy.environments[incident.env].channel
    svc.notifier.tell(channel, incident.requester,
                      f"{incident.ref} ({incident.kind} on {incident.env}) was interrupted before it reached "
                      "Slack and was closed; nothing was rolled back. Request it again if it is still needed.")
    return "closed"
