"""Code rollback on Vercel: plan (current -> last known good), execute, verify by read-back."""

from __future__ import annotations

import time
from collections.abc import Callable

from handlers.model import Deployment, Plan
from handlers.ports import AliasState, CodeProvider, ProviderError
from handlers.services import Refused
from handlers.text import escape


def plan_code_rollback(code: CodeProvider, env: str, project: str, explicit: str | None) -> Plan:
    """Resolve the concrete plan: what production serves now and what it goes back to.

    The last known good deployment is the newest READY production deployment older than the
    current one; an explicit ``dpl_…`` must be a former production deployment of the project.
    """
    current_id = code.alias_state(project).production_id
    history = code.production_deployments(project, limit=20)
    if not current_id:
        raise Refused(f"Vercel reports no production deployment for project `{project}`; nothing to roll back.")
    current = next((d for d in history if d.uid == current_id), None) or code.deployment(current_id)
    if explicit:
        if explicit == current.uid:
            raise Refused(f"`{escape(explicit)}` is already serving production; pick an earlier deployment.")
        target = next((d for d in history if d.uid == explicit), None)
        if target is None:
            raise Refused(
                f"`{escape(explicit)}` is not one of the recent READY production deployments of `{project}`. "
                "Leave it out to roll back to the last known good one."
            )
    else:
        older = [d for d in history if d.created_at < current.created_at and d.uid != current.uid]
        if not older:
            raise Refused(f"`{project}` has no earlier READY production deployment to roll back to.")
        target = max(older, key=lambda d: d.created_at)
    return Plan(
        kind="code",
        env=env,
        target=project,
        from_ref=current.uid,
        to_ref=target.uid,
        params={"requested": explicit} if explicit else {},
        from_deployment=current,
        to_deployment=target,
    )


def replan(code: CodeProvider, plan: Plan) -> Plan:
    """The plan as it would be resolved now (same environment, project and explicit target)."""
    return plan_code_rollback(code, plan.env, plan.target, plan.params.get("requested"))


def wait_for_alias(
    code: CodeProvider,
    project: str,
    target: str,
    *,
    timeout: float = 120.0,
    interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    on_poll: Callable[[], None] = lambda: None,
) -> AliasState:
    """Poll the project until its alias job for ``target`` succeeds or fails (bounded).
    ``on_poll`` runs before each poll (the executor renews its lease there)."""
    deadline = monotonic() + timeout
    on_poll()
    state = code.alias_state(project)
    while True:
        if state.job_to == target and state.job_status in ("succeeded", "failed"):
            return state
        if state.job_to is None and state.production_id == target:
            return AliasState(state.production_id, "succeeded", target)
        if monotonic() >= deadline:
            raise ProviderError(
                f"Vercel did not finish moving production to `{target}` within {int(timeout)}s "
                f"(last job status: {state.job_status or 'none'})."
            )
        sleep(interval)
        interval = min(interval * 1.5, 5.0)
        on_poll()
        state = code.alias_state(project)


def already_applied(state: AliasState, target: str) -> bool:
    """Read-back before any retry: production already serves the target, or a job to it runs."""
    return state.production_id == target or (state.job_to == target and state.job_status != "failed")


def describe(d: Deployment | None) -> str:
    if d is None:
        return "unknown"
    return f"{d.uid} ({d.short_sha})"


def rollback_once(code: CodeProvider, project: str, target: str, description: str, *,
                  hold: Callable[[], None], attempts: int = 4,
                  sleep: Callable[[float], None] = time.sleep) -> str:
    """Ask Vercel to roll back, never blindly twice.

    ``hold`` renews the execution lease right before every send, so a send can only happen while
    this executor owns the incident. A definite refusal (429, no connection) is sent again after
    the advised wait; after an uncertain failure (5xx, timeout, dropped connection) the project is
    read back and the call repeated only when the rollback visibly did not take effect.
    Returns "requested" or "already applied".
    """
    for attempt in range(1, attempts + 1):
        hold()
        try:
            code.rollback(project, target, description)
            return "requested"
        except ProviderError as error:
            if attempt == attempts or not (error.uncertain or error.refused_for_now):
                raise
            if error.uncertain and already_applied(code.alias_state(project), target):
                return "already applied"
            sleep(min(error.retry_after or 2.0 * attempt, 20.0))
    raise AssertionError("unreachable")
