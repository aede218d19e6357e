"""Step 2 of the flow: approve (N distinct approvers bound to the plan hash), deny, cancel,
expire. Every decision is an atomic write in the store; the deciding approval queues the
execution for the worker."""

from __future__ import annotations

from handlers.model import Incident, Status, Why
from handlers.ports import ApprovalOutcome, NewJob
from handlers.runbook import PRE_CHECKLIST
from handlers.services import Services, bind_incident, log


def approve(svc: Services, user: str, incident_id: int, plan_hash: str) -> ApprovalOutcome:
    """Record ``user``'s approval and redraw the incident (``record`` then ``announce``)."""
    outcome = record(svc, user, incident_id, plan_hash)
    announce(svc, outcome)
    return outcome


def record(svc: Services, user: str, incident_id: int, plan_hash: str, *,
           announce_in: str | None = None) -> ApprovalOutcome:
    """Check and record ``user``'s approval: one transaction, nothing slow, so the Slack edge
    does it before it acknowledges the click and a process that dies right after the ack loses
    nothing. ``decided`` is True for exactly one call: the one whose approval completed the
    quorum, moved the incident to EXECUTING and queued its ``execute`` job for the worker (which
    re-reads the provider and voids the approvals if the plan no longer holds).

    ``announce_in`` (the channel clicked in) queues the worker's ``announce`` job in the same
    transaction: the redraw, and the approver's note while more approvals are needed.
    """
    incident = _load(svc, user, "approve", incident_id)
    if incident.status is Status.PENDING and svc.clock.now() >= incident.expires_at:
        expire(svc, incident_id)  # the worker has not got to it yet
        incident = svc.store.get(incident_id) or incident
    refusal = svc.roles.approval_refusal(user, incident, plan_hash) or _unticked(svc, incident)
    if refusal:
        raise svc.refuse(incident_id, user, "approve", refusal, plan_hash=plan_hash)
    required = [k for k in svc.policy.environments[incident.env].require_checklist if k in incident.checklist]
    now = svc.clock.now()
    announce = None if announce_in is None else NewJob(ANNOUNCE_JOB, now, {"user": user, "channel": announce_in})
    outcome = svc.store.approve(incident_id, user, plan_hash, now, required=required, announce=announce)
    if not outcome.recorded:
        # Lost a race: another click changed the incident between our read and our write.
        refusal = svc.roles.approval_refusal(user, outcome.incident, plan_hash) or _unticked(svc, outcome.incident) or Why(
            f"your approval of {incident.ref} was already recorded.", "already_recorded"
        )
        raise svc.refuse(incident_id, user, "approve", refusal, plan_hash=plan_hash, race=True)
    # The store wrote the audit rows (approve, and approved) in the deciding transaction; the log
    # says the same as svc.audit would have.
    log.info("audit approve ok %s", user, extra={"incident": incident_id})
    if outcome.decided:
        log.info("audit approved ok rollbot", extra={"incident": incident_id})
    svc.telemetry.approved(incident.kind, incident.env, outcome.decided)
    return outcome


def announce(svc: Services, outcome: ApprovalOutcome) -> None:
    """After the ack: redraw the root message with the approval."""
    svc.redraw_root(outcome.incident.id)


ANNOUNCE_JOB = "announce"
"""The worker's part of a click's approval: the redraw, and a note to the approver while more
approvals are needed; payload ``{"user", "channel", "decided"}``, queued by ``record``."""


def announce_job(svc: Services, incident_id: int, payload: dict[str, object]) -> str:
    """Redraw the root message; tell a non-deciding approver how many approvals there are now."""
    svc.redraw_root(incident_id)
    if not payload.get("decided"):  # the deciding approval's thread shows the execution instead
        incident = svc.store.get(incident_id)
        if incident is not None:
            svc.notifier.tell(str(payload.get("channel") or incident.channel or ""), str(payload["user"]),
                              f"Approval recorded ({len(incident.valid_approvals())} of {incident.approvals_needed}) "
                              f"for {incident.ref}.")
    return "announced"


def deny(svc: Services, user: str, incident_id: int, reason: str) -> Incident:
    incident = _load(svc, user, "deny", incident_id)
    refusal = svc.roles.deny_refusal(user, incident)
    if refusal:
        raise svc.refuse(incident_id, user, "deny", refusal)
    if not reason.strip():
        raise svc.refuse(incident_id, user, "deny", "a denial needs a reason, so the requester knows what to do next.",
                         code="no_reason")
    now = svc.clock.now()
    denied = svc.store.transition(
        incident_id, [Status.PENDING], Status.DENIED,
        decided_by=user, decided_at=now, decision_note=reason.strip(), finished_at=now,
    )
    if denied is None:
        current = svc.store.get(incident_id)
        state = current.status.value if current else "gone"
        raise svc.refuse(incident_id, user, "deny", f"{incident.ref} is already {state}.", code="not_pending")
    svc.store.cancel_jobs(incident_id, "expire")
    svc.audit(incident_id, user, "deny", "ok", reason=reason.strip())
    svc.redraw_root(denied.id, with_steps=False)
    svc.notifier.closed(denied)
    return denied


def cancel(svc: Services, user: str, incident_id: int) -> Incident:
    """The requester withdraws a pending request. (Approvers use Deny, which needs a reason.)"""
    incident = _load(svc, user, "cancel", incident_id)
    if user != incident.requester:
        raise svc.refuse(incident_id, user, "cancel", f"only <@{incident.requester}>, who requested {incident.ref}, "
                         "can cancel it; approvers can Deny it with a reason.", code="not_requester")
    now = svc.clock.now()
    cancelled = svc.store.transition(
        incident_id, [Status.PENDING], Status.CANCELLED, decided_by=user, decided_at=now, finished_at=now,
        decision_note="cancelled",
    )
    if cancelled is None:
        raise svc.refuse(incident_id, user, "cancel", f"{incident.ref} is no longer pending; it cannot be cancelled.",
                         code="not_pending")
    svc.store.cancel_jobs(incident_id, "expire")
    svc.audit(incident_id, user, "cancel", "ok")
    svc.redraw_root(cancelled.id, with_steps=False)
    svc.notifier.closed(cancelled)
    return cancelled


def expire(svc: Services, incident_id: int) -> Incident | None:
    """Worker job: an unapproved request times out. No-op when it was decided meanwhile."""
    now = svc.clock.now()
    expired = svc.store.transition(incident_id, [Status.PENDING], Status.EXPIRED, decided_at=now, finished_at=now)
    if expired is None:
        return None
    svc.audit(incident_id, "rollbot", "expire", "ok")
    svc.redraw_root(expired.id, with_steps=False)
    svc.notifier.closed(expired)
    return expired


def _unticked(svc: Services, incident: Incident) -> Why | None:
    """Why an approval cannot count yet: pre-rollback items the environment requires first."""
    labels = dict(PRE_CHECKLIST)
    missing = [labels[k] for k in svc.policy.environments[incident.env].require_checklist
               if k in incident.checklist and not incident.checklist[k]]
    if not missing:
        return None
    return Why(f"*{incident.env}* requires {', '.join(f'“{m}”' for m in missing)} to be ticked on {incident.ref} "
               "before an approval counts. Tick it on the incident message, then approve again.", "checklist")


def _load(svc: Services, user: str, action: str, incident_id: int) -> Incident:
    incident = svc.store.get(incident_id)
    if incident is None:
        raise svc.refuse(incident_id, user, action, f"RB-{incident_id} does not exist.", code="unknown_incident")
    bind_incident(incident)
    return incident
