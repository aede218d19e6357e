"""Step 1 of the flow: a rollback request becomes incident RB-N with a concrete plan."""

from __future__ import annotations

from structlog.contextvars import bind_contextvars

from handlers.commands import Rollback
from handlers.model import Incident, Status
from handlers.ports import DeliveryFailed, LockHeld, NewIncident, ProviderError
from handlers.runbook import initial_checklist
from handlers.services import Refused, Services, bind_incident, log


def request_rollback(svc: Services, user: str, cmd: Rollback, *, drill: bool = False,
                     request_job: int | None = None) -> Incident:
    """Check the role, resolve the plan, take the lock, post the root message, notify the team.
    A ``drill`` runs the same flow, refused on a production environment before anything else.
    ``request_job`` is the worker's job planning it (handlers.request_jobs): one incident each."""
    action = f"{'drill' if drill else 'request'}.{cmd.kind}"
    bind_contextvars(user=user, kind=cmd.kind, env=cmd.env)
    if drill and svc.policy.is_production(cmd.env):
        raise svc.refuse(None, user, action, f"*{cmd.env}* is a production environment, and drills never touch one. "
                         "Drill on staging (or set `production = false` on an environment that is not).", env=cmd.env,
                         code="production_drill")
    refusal = svc.roles.request_refusal(user, cmd.env)
    if refusal:
        raise svc.refuse(None, user, action, refusal, env=cmd.env)
    env = svc.policy.environments[cmd.env]
    if cmd.kind not in svc.kinds:
        raise svc.refuse(
            None, user, action,
            f"{cmd.kind} rollbacks are not available in this version of Rollbot yet; "
            "follow the runbook by hand for now.",
            env=cmd.env, code="unavailable",
        )
    kind = svc.kinds[cmd.kind]
    unconfigured = kind.configured(env)
    if unconfigured:
        raise svc.refuse(None, user, action, f"*{cmd.env}* {unconfigured}.", env=cmd.env, code="unconfigured")
    try:
        plan = kind.plan(cmd.env, env, cmd.args)
    except Refused as refused:
        raise svc.refuse(None, user, action, refused.message, env=cmd.env, code="no_plan") from None
    except ProviderError as error:
        raise svc.refuse(None, user, action, f"could not read the provider: {error.message}", env=cmd.env,
                         code="provider_error") from None

    now = svc.clock.now()
    rule = env.policy.rule(cmd.kind)
    try:
        incident = svc.store.create_incident(
            NewIncident(
                kind=cmd.kind,
                env=cmd.env,
                requester=user,
                reason=cmd.reason,
                plan=plan,
                approvals_needed=rule.approvals,
                checklist=initial_checklist(kind.checklist, kind.ticks),
                created_at=now,
                expires_at=now + env.approval_timeout,
                drill=drill,
                issue=cmd.issue,
                severity=cmd.severity,
                request_job=request_job,
            )
        )
    except LockHeld as held:
        other = held.incident
        raise svc.refuse(
            None, user, action,
            f"{other.ref} (a {other.kind} rollback on *{other.env}*, requested by <@{other.requester}>) "
            f"is still {other.status.value}. Finish, deny or cancel it first (`/rollback cancel {other.ref}`).",
            env=cmd.env, blocking=other.id, code="locked",
        ) from None
    bind_incident(incident)
    svc.audit(incident.id, user, action, "ok", plan=plan.to_json(), plan_hash=plan.hash, reason=cmd.reason,
              drill=drill, **({"issue": cmd.issue, "severity": cmd.severity} if cmd.issue else {}))

    try:
        channel, ts = svc.notifier.post_root(incident, [])
    except DeliveryFailed as error:
        if not error.definite:  # it may be in the channel: keep it open; the worker settles it
            svc.audit(incident.id, "rollbot", "slack.post_root", "uncertain", error=str(error))
            raise Refused(f"Slack did not confirm {incident.ref}'s message in <#{env.channel}>. Rollbot will look "
                          "for it and carry on if it is there, or close the request and tell you, within "
                          "a few minutes.") from None
        svc.store.transition(incident.id, [Status.PENDING], Status.FAILED, failure="could not post to Slack")
        svc.audit(incident.id, "rollbot", "slack.post_root", "failed", error=str(error))
        raise Refused(f"{incident.ref} could not be posted in <#{env.channel}> ({error}); it was closed. "
                      "Try again.") from None
    except Exception as error:  # the store or a bug, after Slack may have taken it: the worker settles it
        log.exception("posting the root message failed", extra={"incident": incident.id})
        svc.audit(incident.id, "rollbot", "slack.post_root", "uncertain", error=type(error).__name__)
        raise Refused(f"{incident.ref} was interrupted while it was posted in <#{env.channel}>. Rollbot will "
                      "carry on if the message is there, or close the request and tell you, within a few "
                      "minutes.") from None
    adopt_root(svc, incident.id, channel, ts, "ok")
    refreshed = svc.store.get(incident.id)
    assert refreshed is not None
    return refreshed


def adopt_root(svc: Services, incident_id: int, channel: str, ts: str, outcome: str) -> None:
    """The root message is in Slack (posted now, or found by reading back): record where, then
    notify the team in its thread."""
    svc.store.set_refs(incident_id, channel=channel, root_ts=ts)
    svc.live.remember_thread(incident_id, {"channel": channel, "root_ts": ts})
    svc.audit(incident_id, "rollbot", "slack.post_root", outcome, channel=channel, ts=ts)
    notify_team(svc, incident_id)


def notify_team(svc: Services, incident_id: int) -> None:
    """The checklist's "Notify team": mention the environment's on-call groups in the thread."""
    incident = svc.store.get(incident_id)
    assert incident is not None
    mentions = svc.policy.environments[incident.env].notify
    svc.notifier.notify_team(incident, mentions)
    updated = svc.store.set_checklist(incident_id, "notify", True)
    svc.audit(incident_id, "rollbot", "notify_team", "ok", mentions=list(mentions))
    if updated:
        svc.redraw_root(incident_id)
