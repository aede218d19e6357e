"""Steps 3-4 of the flow, for every kind: execute an approved rollback exactly once, then verify
it by reading the provider back and running the health checks.

The deciding approval moves the incident to EXECUTING and writes an ``execute`` job in the same
transaction; a worker claims that job and takes the *execution lease* (``claim_execution``) with
a fresh token. A heartbeat renews the lease while the kind works (each kind declares its lease),
and the kind renews it again right before every provider call that changes something, so a
stalled executor that wakes up finds it gone and stops (``LeaseLost``). A lease that runs out
(the executor died) is taken over by the worker (``handlers.takeover``); the kind reads the provider
back before it acts again.
"""

from __future__ import annotations

import contextvars
import html
import threading
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from handlers.kind import LeaseLost, RollbackFailed, RollbackKind
from handlers.model import Incident, Status
from handlers.plans import PlanBase
from handlers.ports import NewJob, ProviderError
from handlers.progress import STEP_VERIFY, ProgressUpdates, progress
from handlers.runbook import POST_CHECKLIST, matrix_target
from handlers.services import Refused, Services, bind_incident, log


def new_owner() -> str:
    return uuid.uuid4().hex


class _Run:
    """What a kind may do while it executes (``handlers.kind.Run``)."""

    def __init__(self, svc: Services, incident: Incident, owner: str, kind: RollbackKind, unresolved: bool,
                 progress: ProgressUpdates, rechecked: PlanBase | None) -> None:
        self._svc, self._incident, self._owner, self._kind = svc, incident, owner, kind
        self.unresolved_attempt = unresolved
        self.rechecked = rechecked
        self._progress = progress

    @property
    def incident_id(self) -> int:
        return self._incident.id

    @property
    def incident_ref(self) -> str:
        return self._incident.ref

    @property
    def reason(self) -> str:
        return self._incident.reason

    def unresolved(self, steps: Sequence[str]) -> bool:
        return _attempt_unsettled(self._svc, self._incident.id, steps)

    def done(self, step: str) -> bool:
        return any(s.name == step and s.status == "ok" for s in self._svc.store.steps(self._incident.id))

    def hold(self) -> None:
        try:
            held = self._svc.store.renew_execution(self._incident.id, self._owner, self._kind.lease)
        except Exception:  # the store cannot confirm the lease: stop, let it run out, resume later
            log.warning("could not renew the execution lease; stopping", extra={"incident": self._incident.id})
            raise LeaseLost() from None
        if not held:
            raise LeaseLost()
        self._svc.precedence.relax()  # the change goes out now: the rest need not wait for it any more

    def audit(self, action: str, outcome: str, **detail: Any) -> None:
        self._svc.audit(self._incident.id, "rollbot", action, outcome, **detail)

    def step(self, name: str) -> None:
        self._svc.store.start_step(self._incident.id, name, self._svc.clock.now())  # no-op when resumed
        self._progress.poke()

    def finish(self, name: str, status: str, detail: str) -> None:
        self._svc.store.start_step(self._incident.id, name, self._svc.clock.now())
        self._svc.store.finish_step(self._incident.id, name, status, detail, self._svc.clock.now())

    def note(self, name: str, detail: str) -> None:
        self._svc.store.note_step(self._incident.id, name, detail)
        self._progress.poke()

    def tick(self, key: str) -> None:
        if self._svc.tick(self._incident.id, key):
            self._svc.redraw_root(self._incident.id)


class Heartbeat:
    """Renews the execution lease every third of it while a kind works; stops when the lease is
    lost (then the kind's next ``hold()`` raises LeaseLost) or when the work ends."""

    def __init__(self, svc: Services, incident_id: int, owner: str, kind: RollbackKind) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=contextvars.copy_context().run,  # the incident's log context
                                        args=(self._beat, svc, incident_id, owner, kind),
                                        name=f"rollbot-heartbeat-{incident_id}", daemon=True)

    def _beat(self, svc: Services, incident_id: int, owner: str, kind: RollbackKind) -> None:
        every = max(kind.lease.total_seconds() / 3, 0.05)
        while not self._stop.wait(every):
            try:
                if not svc.store.renew_execution(incident_id, owner, kind.lease):
                    return
            except Exception:  # a database blip: the next beat tries again, the lease has slack
                log.warning("heartbeat could not renew the lease", extra={"incident": incident_id})

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def execute(svc: Services, incident_id: int, owner: str | None = None, *, resume: bool = False,
            heartbeat: bool = True) -> Incident | None:
    """Take the execution lease of an EXECUTING incident and run its kind; None when someone
    else holds it (or the incident is not executing any more).

    ``resume=True`` is the worker taking over a lease that ran out. The heartbeat renews the lease
    until execution ends (verified or failed); ``heartbeat=False`` leaves it to run out unless the
    kind's own ``hold()`` calls renew it (a frozen process, in the tests).
    """
    with svc.precedence.urgent():  # ahead of the worker's other work until its change goes out
        return _take_and_execute(svc, incident_id, owner, resume, heartbeat)


def _take_and_execute(svc: Services, incident_id: int, owner: str | None, resume: bool,
                      heartbeat: bool) -> Incident | None:
    incident = svc.store.get(incident_id)
    if incident is None or incident.status is not Status.EXECUTING:
        return None
    bind_incident(incident)
    kind = svc.kinds[incident.kind]
    owner = owner or new_owner()
    if not svc.store.claim_execution(incident_id, owner, kind.lease):
        return None
    if resume:
        svc.audit(incident_id, "rollbot", "execute.resume", "ok")
    with Heartbeat(svc, incident_id, owner, kind) if heartbeat else nullcontext():
        return _execute(svc, incident, kind, owner)


def _execute(svc: Services, incident: Incident, kind: RollbackKind, owner: str) -> Incident | None:
    incident_id = incident.id
    # Nothing started yet: is the approved plan still the plan?
    rechecked = None if svc.store.steps(incident_id) else _recheck_plan(svc, incident, kind, owner)
    if isinstance(rechecked, Incident):
        return rechecked  # it no longer holds: reopened for approval, or failed
    updates = ProgressUpdates(svc, incident_id)
    try:
        run = _Run(svc, incident, owner, kind, _unresolved_attempt(svc, incident_id, kind), updates, rechecked)
        lost, failure = _run_kind(svc, incident, kind, run)
        # Stamped before the last redraw lands: that may wait for other executions' changes.
        marked = not lost and failure is None and svc.store.mark_rolled_back(incident_id, owner, svc.clock.now())
    finally:
        svc.precedence.relax()  # the redraws waiting for it go now
        updates.close()  # the last redraw lands before anything that follows draws the end
    if lost:
        _quietly(svc, incident_id, "lease_lost")
        return None
    if failure is not None:
        return fail(svc, incident_id, failure, owner)
    if not marked:
        return None  # fenced: another executor owns it now
    return verify(svc, incident_id, owner)


def _run_kind(svc: Services, incident: Incident, kind: RollbackKind, run: _Run) -> tuple[bool, str | None]:
    """Run the kind's change: (the lease was lost, why it failed; None when it took effect)."""
    incident_id = incident.id
    try:
        try:
            done = kind.execute(incident.plan, run)
        finally:
            svc.precedence.relax()  # its change went out, or never will: what follows waits its turn
        svc.audit(incident_id, "rollbot", "execute", "ok", result=done)
    except LeaseLost:
        return True, None
    except RollbackFailed as failed:
        return False, failed.message
    except ProviderError as error:
        svc.audit(incident_id, "rollbot", incident.kind, "error", error=error.message, uncertain=error.uncertain)
        if not _took_effect(svc, incident, kind):
            return False, error.message
        svc.audit(incident_id, "rollbot", "execute", "ok", why="took effect despite the error (read back)")
        done_steps = {s.name for s in svc.store.steps(incident_id) if s.status == "ok"}
        for step in kind.steps:
            if step.name not in done_steps:
                run.finish(step.name, "ok", "took effect (read back after an error)")
    except Exception as error:  # unexpected: fail loudly, keep the record
        log.exception("execution crashed", extra={"incident": incident_id})
        if not _took_effect(svc, incident, kind):
            return False, f"unexpected error ({type(error).__name__}); see the bot's logs."
    return False, None


def _quietly(svc: Services, incident_id: int, outcome: str) -> None:
    """Audit a stop that may have been caused by the database itself."""
    try:
        svc.audit(incident_id, "rollbot", "execute", outcome)
    except Exception:
        log.warning("could not audit execute %s", outcome, extra={"incident": incident_id})


def _recheck_plan(svc: Services, incident: Incident, kind: RollbackKind,
                  owner: str) -> Incident | PlanBase | None:
    """Re-resolve the plan before the first provider call. If the provider moved since the
    request (someone shipped meanwhile), the incident goes back to PENDING with the new plan,
    every approval given so far is void, and the thread says so; returns that incident (or the
    failed one, when no plan holds now). When the plan still holds, returns it as just resolved
    (the kind may use what it read, ``Run.rechecked``); None when the provider cannot be read
    now (the kind reads again before any change)."""
    try:
        fresh = kind.replan(incident.plan, svc.policy.environments[incident.env])
    except Refused as refused:  # its message is already escaped for Slack; the failure note escapes it again
        return fail(svc, incident.id, f"the approved plan no longer holds: {html.unescape(refused.message)}", owner)
    except ProviderError:
        return None
    same = fresh.model_copy(update={"revision": incident.plan.revision})
    if same.hash == incident.plan_hash:
        return same
    # A new revision: its hash differs from every earlier one, even if the plan later changes
    # back, so approvals voided here never count again. The request gets a fresh window.
    fresh = fresh.model_copy(update={"revision": incident.plan.revision + 1})
    svc.precedence.relax()  # no change goes out now: the notes below wait their turn like any other
    reopened = svc.store.reopen(incident.id, owner, incident.plan_hash, fresh,
                                svc.clock.now() + svc.policy.environments[incident.env].approval_timeout)
    if reopened is None:
        return svc.store.get(incident.id)  # fenced: another executor owns it now
    svc.audit(incident.id, "rollbot", "plan_changed", "ok", old=incident.plan.to_json(), new=fresh.to_json(),
              old_hash=incident.plan_hash, new_hash=fresh.hash)
    svc.notifier.plan_changed(reopened, incident.plan)
    svc.redraw_root(reopened.id, with_steps=False)
    return reopened


def _unresolved_attempt(svc: Services, incident_id: int, kind: RollbackKind) -> bool:
    """Did an earlier executor audit an attempt at a change and stop before its outcome?"""
    return _attempt_unsettled(svc, incident_id, [step.name for step in kind.steps])


def _attempt_unsettled(svc: Services, incident_id: int, steps: Sequence[str]) -> bool:
    names = set(steps)
    last = [e.outcome for e in svc.store.audit_log(incident_id) if e.action in names]
    return bool(last) and last[-1] in ("attempt", "uncertain")  # sent, and never settled either way


def _took_effect(svc: Services, incident: Incident, kind: RollbackKind) -> bool:
    """After an error, read the provider back: is the plan's change in place after all?"""
    try:
        return kind.took_effect(incident.plan)
    except ProviderError:
        return False


def verify(svc: Services, incident_id: int, owner: str) -> Incident | None:
    """Read the provider back, run the health checks, start monitoring."""
    incident = svc.store.get(incident_id)
    assert incident is not None
    kind = svc.kinds[incident.kind]
    env = svc.policy.environments[incident.env]
    svc.precedence.give_way()  # other executions' changes go out before this one's read-back
    svc.store.start_step(incident_id, STEP_VERIFY, svc.clock.now())
    progress(svc, incident_id)
    try:
        result = kind.verify(incident.plan)
    except ProviderError as error:
        return fail(svc, incident_id, f"could not read the provider back: {error.message}", owner)
    svc.audit(incident_id, "rollbot", "read_back", "ok" if result.ok else "failed", detail=result.detail,
              **result.facts)
    if not result.ok:
        return fail(svc, incident_id, f"read-back: {result.detail}.", owner)
    health = svc.health.check(env.health_checks)
    healthy = all(h.ok for h in health)
    svc.audit(incident_id, "rollbot", "health_check", "ok" if healthy else "failed",
              phase="verify", results=[h.__dict__ for h in health])
    now = svc.clock.now()
    detail = result.detail + "; " + (
        f"{sum(h.ok for h in health)}/{len(health)} health checks pass" if health else "no health checks configured")
    total = len(env.monitor)
    reminders = [NewJob("monitor", now + offset, {"index": index, "total": total})
                 for index, offset in enumerate(env.monitor, start=1)]
    # One transaction: MONITORING, the post-rollback checklist and every reminder, or none of it.
    monitoring = svc.store.start_monitoring(incident_id, owner, now, [key for key, _ in POST_CHECKLIST], reminders)
    if monitoring is None:  # fenced: another executor owns it now
        return svc.store.get(incident_id)
    svc.store.finish_step(incident_id, STEP_VERIFY, "ok" if healthy else "failed", detail, now)
    svc.audit(incident_id, "rollbot", "verify", "ok" if healthy else "unhealthy", detail=result.detail)
    _report(svc, monitoring, "verified" if healthy else "unhealthy")
    if healthy:  # read back as planned and healthy: the target was a known good state
        svc.tick(incident_id, "known_good")
    progress(svc, incident_id)
    svc.notifier.verification(monitoring, result, health, healthy)
    svc.redraw_root(incident_id)
    return monitoring


def fail(svc: Services, incident_id: int, error: str, owner: str) -> Incident | None:
    """Mark the incident failed, tell the thread what went wrong and the runbook's next step.
    Only the lease holder can (a stale executor is fenced off). The lock is released by the
    status change; nothing in the audit log is lost; Slack trouble never raises here."""
    svc.precedence.relax()  # an execution that fails sends no change: nothing need wait for it
    now = svc.clock.now()
    failed = svc.store.transition(
        incident_id, [Status.EXECUTING], Status.FAILED, owner=owner, failure=error, finished_at=now
    )
    if failed is None:  # fenced: another executor owns it; its outcome is the incident's
        svc.audit(incident_id, "rollbot", "execute.fenced", "ok", error=error)
        return svc.store.get(incident_id)
    svc.audit(incident_id, "rollbot", "execute", "failed", error=error)
    _report(svc, failed, "failed")
    for step in svc.store.steps(incident_id):
        if step.status == "running":
            svc.store.finish_step(incident_id, step.name, "failed", error, now)
    svc.store.cancel_jobs(incident_id, "monitor")
    progress(svc, incident_id)
    svc.notifier.failure(failed, error, svc.kinds[failed.kind].next_step)
    svc.redraw_root(incident_id)
    return failed


def _report(svc: Services, incident: Incident, outcome: str) -> None:
    """The execution's end for the metrics: its outcome, and its time to rollback (request to
    the provider's change) against the decision matrix's target (handlers.runbook)."""
    kind = svc.kinds[incident.kind]
    target, _ = matrix_target(incident.issue, kind.target, kind.risk)
    took = incident.rolled_back_at - incident.created_at if incident.rolled_back_at else None
    svc.telemetry.rolled_back(incident.kind, incident.env, outcome, took.total_seconds() if took else None,
                              target.total_seconds())
