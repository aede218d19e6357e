"""A rollback request, taken by the web process as one durable row and planned by the worker.

The slash command (or the decision modal) writes a ``request`` job and acknowledges: the ack waits
for one short transaction, never for the provider, the lock or Slack. The worker plans the job
(:func:`handlers.requests.request_rollback`: roles, the provider's reads, the lock, the root
message, the team's notification) and answers the requester where they asked, through the
command's ``response_url`` when there is one.

At most one incident per job: the incident records the job that planned it, so a job run again
after its worker died finds that incident instead of planning a second one (its root message is
then settled as any interrupted request's is). A request the workers did not reach within
``STALE_AFTER`` is not started late: the requester is told to ask again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from handlers.commands import Rollback
from handlers.model import Incident
from handlers.requests import request_rollback
from handlers.services import Refused, Services, log
from handlers.store import DueJob

REQUEST_JOB = "request"
STALE_AFTER = timedelta(minutes=10)  # a response_url lives 30 minutes; a request this old is news to no one


@dataclass(frozen=True)
class ReplyTo:
    """Where the requester asked: the command's ``response_url`` (it answers anywhere, even where
    the bot is not a member) and the channel for an ephemeral when there is none."""

    channel: str
    response_url: str | None = None
    label: str | None = None  # the decision matrix row it came from, named in the answer


def queue_request(svc: Services, user: str, cmd: Rollback, reply: ReplyTo, *, drill: bool = False) -> None:
    """The web process's part: one ``request`` job, due now, written before the ack."""
    svc.store.schedule(None, REQUEST_JOB, svc.clock.now(), {
        "user": user, "kind": cmd.kind, "env": cmd.env, "reason": cmd.reason, "args": dict(cmd.args),
        "issue": cmd.issue, "severity": cmd.severity, "drill": drill,
        "reply": {"channel": reply.channel, "response_url": reply.response_url, "label": reply.label},
    })


def plan_request(svc: Services, job: DueJob) -> str:
    """The worker's part: plan the request once and tell the requester; returns the job's outcome."""
    payload = job.payload
    user, drill = str(payload["user"]), bool(payload.get("drill"))
    reply = ReplyTo(**payload["reply"])
    cmd = Rollback(kind=str(payload["kind"]), env=str(payload["env"]), reason=str(payload["reason"]),
                   args=dict(payload.get("args") or {}), issue=payload.get("issue"), severity=payload.get("severity"))
    earlier = svc.store.incident_for_request(job.id)
    if earlier is not None:  # planned by an earlier run of this job, which died before it finished
        svc.notifier.answer(reply.channel, reply.response_url, user,
                            f":rewind: {earlier.ref} was planned from your request and is {earlier.status.value}; "
                            f"see <#{earlier.channel or svc.policy.environments[earlier.env].channel}>.")
        return "planned before"
    waited = svc.clock.now() - job.due_at
    if waited > STALE_AFTER:
        minutes = int(waited.total_seconds() // 60)
        svc.audit(None, user, f"{'drill' if drill else 'request'}.{cmd.kind}", "refused", env=cmd.env,
                  reason=f"not planned: it waited {minutes} minutes for a worker", code="stale")
        svc.notifier.answer(reply.channel, reply.response_url, user,
                            f":no_entry: Not started: your {cmd.kind} rollback request on *{cmd.env}* waited "
                            f"{minutes} minutes for Rollbot's worker, so nothing was done. Request it again if it "
                            "is still needed.")
        return "stale"
    try:
        incident = request_rollback(svc, user, cmd, drill=drill, request_job=job.id)
    except Refused as refused:
        svc.notifier.answer(reply.channel, reply.response_url, user, f":no_entry: Not started: {refused.message}")
        return "refused"
    except Exception as error:  # the store or a bug: never planned twice, and the requester is told
        # One line for the operator, as the web process logs a failed listener (the traceback at DEBUG).
        log.warning("planning request job %s failed: %s", job.id, type(error).__name__)
        log.debug("planning request job %s failed", job.id, exc_info=True)
        planned = _planned(svc, job.id)
        if planned is not None and planned.root_ts:  # in the channel already; what failed came after
            _waiting(svc, planned, reply, user, drill, cmd)
            return "planned"
        svc.notifier.answer(reply.channel, reply.response_url, user, (
            f":warning: {planned.ref} was interrupted while it was planned. Rollbot will carry on if its "
            "message is in the channel, or close it and tell you, within a few minutes."
            if planned is not None else
            f":warning: Not started: your request could not be planned ({type(error).__name__}); nothing was "
            "done. Try again; the details are in the bot's logs."))
        return "failed"
    _waiting(svc, incident, reply, user, drill, cmd)
    return "planned"


def _waiting(svc: Services, incident: Incident, reply: ReplyTo, user: str, drill: bool, cmd: Rollback) -> None:
    what = " (a drill)" if drill else f" ({reply.label}, severity {cmd.severity})" if reply.label else ""
    svc.notifier.answer(reply.channel, reply.response_url, user,
                        f":rewind: {incident.ref}{what} is waiting for approval in <#{incident.channel}>.")


def _planned(svc: Services, job_id: int) -> Incident | None:
    try:
        return svc.store.incident_for_request(job_id)
    except Exception:
        return None
