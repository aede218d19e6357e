"""Step 6 of the flow: resolve -> root cause and lessons -> post-incident summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from handlers.model import Incident, NewFollowUp, Resolution, Status
from handlers.ports import DeliveryFailed
from handlers.services import Services, bind_incident
from handlers.summary import Summary, build_summary, with_follow_ups

RESOLVABLE = (Status.MONITORING, Status.FAILED, Status.EXECUTING)


def resolvable(svc: Services, user: str, incident_id: int | None, *, check_roles: bool = True) -> Incident:
    """The incident ``user`` may resolve now (the newest monitored one when no id is given).
    ``check_roles=False`` skips the role check (which may ask Slack): the listeners open the
    modal at once and check the role when it is submitted."""
    if incident_id is None:
        candidates = [i for i in svc.store.open_incidents() if i.status in (Status.MONITORING,)]
        if not candidates:
            raise svc.refuse(None, user, "resolve", "there is no incident waiting to be resolved.", code="no_incident")
        incident = max(candidates, key=lambda i: i.created_at)
    else:
        found = svc.store.get(incident_id)
        if found is None:
            raise svc.refuse(incident_id, user, "resolve", f"RB-{incident_id} does not exist.", code="unknown_incident")
        incident = found
    if incident.status not in (Status.MONITORING, Status.FAILED) or incident.resolution is not None:
        raise svc.refuse(incident.id, user, "resolve", f"{incident.ref} is {incident.status.value}; only a "
                         "monitored or failed rollback can be resolved.", code="not_resolvable")
    bind_incident(incident)
    refusal = svc.roles.resolve_refusal(user, incident) if check_roles else None
    if refusal:
        raise svc.refuse(incident.id, user, "resolve", refusal)
    return incident


def resolve(svc: Services, user: str, incident_id: int, root_cause: str, lessons: str,
            follow_ups: Sequence[NewFollowUp] = ()) -> tuple[Incident, Summary]:
    """Close the incident, store and post the summary. Only one resolve wins (conditional write);
    its ``follow_ups`` (and their first DM reminders) are stored with it, or none are."""
    incident = resolvable(svc, user, incident_id)
    now = svc.clock.now()
    resolution = Resolution(resolved_by=user, root_cause=root_cause.strip(), lessons=lessons.strip(), at=now)
    final = Status.RESOLVED if incident.status is Status.MONITORING else Status.FAILED
    projected = replace(incident, status=final, resolution=resolution, finished_at=incident.finished_at or now)
    summary = build_summary(projected, svc.kinds[incident.kind], svc.store.steps(incident_id),
                            svc.store.audit_log(incident_id), follow_ups)
    stored = svc.store.resolve(incident_id, resolution, summary, final, projected.finished_at or now, follow_ups)
    if stored is None:
        raise svc.refuse(incident_id, user, "resolve", f"{incident.ref} was resolved meanwhile.", code="already_resolved")
    svc.audit(incident_id, user, "resolve", "ok", status=final.value)
    svc.redraw_root(incident_id)
    # The resolving transaction queued the summary's delivery: post it now, and if that is
    # interrupted or refused the worker finishes the job (once: the step guard and the message ledger).
    if deliver_summary(svc, incident_id) in ("posted", "already sent"):
        svc.store.cancel_jobs(incident_id, "post_summary")
    return stored, summary


def deliver_summary(svc: Services, incident_id: int) -> str:
    """Post the stored summary once. "retry" when it is not known to be in Slack."""
    incident = svc.store.get(incident_id)
    summary = svc.store.summary(incident_id)
    if incident is None or summary is None:
        return "noop"
    bind_incident(incident)
    now = svc.clock.now()
    if not (svc.store.start_step(incident_id, "summary", now) or svc.store.restart_step(incident_id, "summary", now)):
        done = any(s.name == "summary" and s.status == "ok" for s in svc.store.steps(incident_id))
        return "already sent" if done else "retry"  # another runner is posting it: check again later
    # The follow-ups as they stand now: one marked done before the summary got out shows done.
    summary = with_follow_ups(summary, svc.store.follow_ups(incident_id))
    try:
        ts = svc.notifier.summary(incident, summary)
    except DeliveryFailed as error:
        svc.store.finish_step(incident_id, "summary", "failed" if error.definite else "uncertain", str(error), now)
        svc.audit(incident_id, "rollbot", "summary", "failed", error=str(error), definite=error.definite)
        return "retry"  # an unknown outcome is read back before the summary is posted again
    svc.store.finish_step(incident_id, "summary", "ok", "posted", now)
    svc.store.set_refs(incident_id, summary_ts=ts)
    svc.audit(incident_id, "rollbot", "summary", "ok", ts=ts)
    return "posted"
