"""The code rollback kind (Vercel): production back to the last known good deployment.

Plan: what production serves now and the newest earlier READY production deployment (or one
given). Execute: one instant-rollback request, never sent blindly twice. Verify: production
serves the target. Only this module, its adapter (``integrations.vercel``) and its renderer
(``bot.blocks.code_plan``) know Vercel.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from handlers.commands import CommandError
from handlers.config import Environment
from handlers.kind import RollbackFailed, Run, Step, Verification
from handlers.plans import PlanBase
from handlers.ports import ProviderError
from handlers.services import Refused, log
from handlers.text import escape

A = TypeVar("A")
B = TypeVar("B")
STEP_ROLLBACK = Step("vercel.rollback", "Ask Vercel to roll back")
STEP_ALIAS = Step("vercel.alias", "Production alias moves")
FRESH_READ = 1.0  # seconds: how old the re-check's read of the alias may be to stand as the read before the send


class Deployment(BaseModel):
    """A Vercel deployment, reduced to what a human needs to recognise it."""

    model_config = ConfigDict(frozen=True)

    uid: str
    url: str
    created_at: datetime
    commit_sha: str | None = None
    commit_message: str | None = None
    author: str | None = None
    state: str = "READY"

    @property
    def short_sha(self) -> str:
        return (self.commit_sha or "")[:7] or "unknown"

    def describe(self) -> str:
        return f"{self.uid} ({self.short_sha})"


@dataclass(frozen=True)
class AliasState:
    """Where a project's production alias points, and the last alias job (``lastAliasRequest``)."""

    production_id: str | None
    job_status: str | None  # pending | in-progress | succeeded | failed | None
    job_to: str | None
    requested_at: int | None = None  # the job's requestedAt (ms): tells one request from another


class CodeProvider(Protocol):
    def production_deployments(self, project: str, limit: int = 20) -> list[Deployment]: ...
    def deployment(self, uid: str) -> Deployment: ...
    def alias_state(self, project: str) -> AliasState: ...
    def rollback(self, project: str, deployment_uid: str, description: str) -> None:
        """One request, never retried inside: the caller renews its lease before each send."""


class CodePlan(PlanBase):
    kind: Literal["code"] = "code"
    project: str
    from_deployment: Deployment
    to_deployment: Deployment
    requested: str | None = None  # the dpl_… the requester named, if any

    @property
    def seen(self) -> tuple[float, AliasState] | None:
        """The alias state this plan was resolved from, and when (monotonic), if it was resolved
        in this process: kept beside the fields (pydantic stores, hashes and compares only
        those, as with a cached_property), so a plan loaded from the database has none."""
        seen: tuple[float, AliasState] | None = self.__dict__.get("_seen")
        return seen

    def saw(self, at: float, state: AliasState) -> CodePlan:
        self.__dict__["_seen"] = (at, state)
        return self

    def binding(self) -> dict[str, Any]:
        return {"kind": self.kind, "env": self.env, "project": self.project, "from": self.from_deployment.uid,
                "to": self.to_deployment.uid, "requested": self.requested}

    @property
    def target(self) -> str:
        return self.project

    @property
    def change(self) -> tuple[str, str]:
        return self.from_deployment.uid, self.to_deployment.uid

    @property
    def serves_after(self) -> str | None:
        return self.to_deployment.uid


class CodeKind:
    name: str = "code"
    words: tuple[str, ...] = ("code",)
    title: str = "Code rollback"
    usage: str = ("/rollback code  <env> [dpl_…]            [reason]   roll Vercel back to the last known good "
                  "(or given) deployment")
    plan_model: type[PlanBase] = CodePlan
    target: timedelta = timedelta(minutes=5)
    risk: str = "Low"
    lease: timedelta = timedelta(seconds=30)
    steps: tuple[Step, ...] = (STEP_ROLLBACK, STEP_ALIAS)
    ticks: tuple[str, ...] = ()
    checklist: tuple[str, ...] = ()
    next_step: str = ("Runbook, code rollback: open Vercel → Project → Deployments, find the last known good "
                 "deployment, choose “…” → “Promote to Production”, then verify it is live and monitor for 15 minutes.")

    def __init__(self, provider: CodeProvider, *, alias_timeout: float = 120.0, uncertain_window: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 rolled_back: Callable[[str], Sequence[PlanBase]] = lambda env: ()) -> None:
        self.provider = provider
        self._rolled_back = rolled_back  # an environment's earlier rollbacks' plans, newest first
        self.alias_timeout = alias_timeout
        self.uncertain_window = uncertain_window  # how long an uncertain send is watched for
        self._sleep = sleep
        self._monotonic = monotonic

    # -- request -----------------------------------------------------------------------------

    def parse(self, env: str, words: Sequence[str]) -> tuple[dict[str, Any], str]:
        if words and words[0].startswith("dpl_"):
            if not words[0][4:].replace("_", "").isalnum():
                raise CommandError(f"`{escape(words[0])}` is not a Vercel deployment id (`dpl_…`).")
            return {"deployment": words[0]}, " ".join(words[1:])
        return {}, " ".join(words)

    def configured(self, env: Environment) -> str | None:
        return None if env.vercel_project else "has no `vercel_project` configured, so code rollbacks are off"

    def plan(self, env_name: str, env: Environment, args: Mapping[str, Any]) -> CodePlan:
        assert env.vercel_project is not None
        return self._resolve(env_name, env.vercel_project, args.get("deployment"))

    def replan(self, plan: PlanBase, env: Environment) -> CodePlan:
        assert isinstance(plan, CodePlan)
        return self._resolve(plan.env, plan.project, plan.requested)

    def _resolve(self, env: str, project: str, explicit: str | None) -> CodePlan:
        """The last known good deployment is the newest READY production deployment older than
        the current one; an explicit ``dpl_…`` must be a former production deployment."""
        read_at = self._monotonic()
        state, history = _alongside(lambda: self.provider.alias_state(project),
                                    lambda: self.provider.production_deployments(project, limit=20))
        current_id = state.production_id
        if not current_id:
            raise Refused(f"Vercel reports no production deployment for project `{project}`; nothing to roll back.")
        current = next((d for d in history if d.uid == current_id), None) or self.provider.deployment(current_id)
        if explicit:
            if explicit == current.uid:
                raise Refused(f"`{escape(explicit)}` is already serving production; pick an earlier deployment.")
            target = next((d for d in history if d.uid == explicit), None)
            if target is None:
                raise Refused(f"`{escape(explicit)}` is not one of the recent READY production deployments of "
                              f"`{project}`. Leave it out to roll back to the last known good one.")
        else:
            # Never back onto a deployment Rollbot rolled production away from (Shipit's lock): after
            # a code + env rollback, production serves a rebuild that is newer than the bad one.
            away = {p.from_deployment.uid for plan in self._rolled_back(env) for p in plan.components()
                    if isinstance(p, CodePlan) and p.project == project}
            older = [d for d in history if d.created_at < current.created_at and d.uid != current.uid]
            if not older:
                raise Refused(f"`{project}` has no earlier READY production deployment to roll back to.")
            good = [d for d in older if d.uid not in away]
            if not good:
                raise Refused(f"every earlier READY production deployment of `{project}` is one an earlier rollback "
                              "moved production away from. Name the one to go back to: `/rollback code "
                              f"{escape(env)} dpl_…`.")
            target = max(good, key=lambda d: d.created_at)
        return CodePlan(env=env, project=project, from_deployment=current, to_deployment=target,
                        requested=explicit).saw(read_at, state)

    # -- execution ---------------------------------------------------------------------------

    def execute(self, plan: PlanBase, run: Run) -> str:
        assert isinstance(plan, CodePlan)
        project, target = plan.project, plan.to_deployment.uid
        run.step(STEP_ROLLBACK.name)
        state, when, age = self._read_before(plan, run)
        run.audit("vercel.read_alias", "ok", production=state.production_id, job_status=state.job_status,
                  job_to=state.job_to, read=when, age_ms=age)
        if _applied(state, target):
            run.audit(STEP_ROLLBACK.name, "skipped", why="production already serves the target")
            done = "production already served the target"
        elif run.unresolved_attempt and self._took_hold(plan, run, state, "a previous executor sent it and stopped"):
            done = "requested by a previous executor (confirmed by Vercel's record)"
        elif state.production_id != plan.from_deployment.uid:
            raise RollbackFailed(
                f"production moved to `{state.production_id}` after {run.incident_ref} was approved (the approved "
                f"plan was `{plan.from_deployment.uid}` → `{target}`); nothing was changed. Request the rollback again.")
        else:
            done = self._send(plan, run, state)
        run.finish(STEP_ROLLBACK.name, "ok", f"{done}: {plan.to_deployment.describe()}")
        run.step(STEP_ALIAS.name)
        alias = self._wait_for_alias(project, target, run)
        run.audit(STEP_ALIAS.name, alias.job_status or "unknown", production=alias.production_id)
        if alias.job_status == "failed":
            raise RollbackFailed("Vercel reported the alias job as failed; production did not move.")
        run.finish(STEP_ALIAS.name, "ok", "production alias moved")
        return done

    def _read_before(self, plan: CodePlan, run: Run) -> tuple[AliasState, str, int]:
        """Where production stands before the send, which read that was, and its age (ms): what
        the plan's re-check read, when that was a moment ago (one round trip to Vercel fewer on
        the way to the change), else read now."""
        rechecked = run.rechecked
        seen = rechecked.seen if isinstance(rechecked, CodePlan) and rechecked.project == plan.project else None
        if seen is not None and (age := self._monotonic() - seen[0]) <= FRESH_READ:
            return seen[1], "at the re-check", round(age * 1000)
        return self.provider.alias_state(plan.project), "now", 0

    def _send(self, plan: CodePlan, run: Run, before: AliasState, attempts: int = 4) -> str:
        """Send the rollback. A definite refusal (429, no connection) is sent again after the
        advised wait. After an uncertain failure (timeout, dropped connection, 5xx) it is sent
        again only once Vercel's own record shows the first request did not take effect."""
        description = f"{run.incident_ref}: {run.reason or 'rollback'}"[:200]
        for attempt in range(1, attempts + 1):
            run.hold()  # a send only ever happens under a freshly renewed lease
            run.audit(STEP_ROLLBACK.name, "attempt", project=plan.project, to=plan.to_deployment.uid)
            try:
                self.provider.rollback(plan.project, plan.to_deployment.uid, description)
            except ProviderError as error:
                run.audit(STEP_ROLLBACK.name, "uncertain" if error.uncertain else "refused", error=error.message,
                          status=error.status)
                if error.uncertain:
                    if self._took_hold(plan, run, before, error.message):
                        return "requested (confirmed by Vercel's record after an uncertain answer)"
                    if attempt == attempts:
                        raise RollbackFailed(f"the rollback request failed {attempts} times ({error.message}); "
                                             "Vercel's record shows none of them took effect.") from None
                    continue
                if not error.refused_for_now or attempt == attempts:
                    raise
                self._sleep(min(error.retry_after or 2.0 * attempt, 20.0))
                continue
            run.audit(STEP_ROLLBACK.name, "ok", project=plan.project, to=plan.to_deployment.uid, result="requested")
            return "requested"
        raise AssertionError("unreachable")

    def _took_hold(self, plan: CodePlan, run: Run, before: AliasState, why: str) -> bool:
        """After an uncertain send, watch ``lastAliasRequest`` for a bounded window. True when our
        request shows up (a job to the target newer than the one before) or production serves the
        target; False when no new request has appeared by the end of the window (it did not take
        effect). Our job having failed fails the rollback, as it would had Vercel answered."""
        target = plan.to_deployment.uid
        deadline = self._monotonic() + self.uncertain_window
        interval = 0.1
        while True:
            run.hold()
            state = self.provider.alias_state(plan.project)
            ours = state.job_to == target and (state.requested_at or 0) > (before.requested_at or 0)
            if state.production_id == target or (ours and state.job_status != "failed"):
                run.audit(STEP_ROLLBACK.name, "ok", why=f"took effect despite: {why}", job_status=state.job_status)
                return True
            if ours:  # received, and its job failed: as when Vercel answers, that fails the rollback
                raise RollbackFailed("Vercel reported the alias job as failed; production did not move.")
            if self._monotonic() >= deadline:
                run.audit(STEP_ROLLBACK.name, "not_taken", why=f"no new alias request in {self.uncertain_window:g}s")
                return False
            self._sleep(interval)
            interval = min(interval * 2, 2.0)

    def _wait_for_alias(self, project: str, target: str, run: Run) -> AliasState:
        """Poll until the alias job for ``target`` succeeds or fails (bounded)."""
        deadline = self._monotonic() + self.alias_timeout
        interval = 0.2
        while True:
            run.hold()
            state = self.provider.alias_state(project)
            if state.job_to == target and state.job_status in ("succeeded", "failed"):
                return state
            if state.job_to is None and state.production_id == target:
                return AliasState(state.production_id, "succeeded", target, state.requested_at)
            if self._monotonic() >= deadline:
                raise ProviderError(f"Vercel did not finish moving production to `{target}` within "
                                    f"{int(self.alias_timeout)}s (last job status: {state.job_status or 'none'}).")
            self._sleep(interval)
            interval = min(interval * 1.5, 5.0)

    def took_effect(self, plan: PlanBase) -> bool:
        assert isinstance(plan, CodePlan)
        target = plan.to_deployment.uid
        state = self.provider.alias_state(plan.project)
        if state.job_to == target and state.job_status in ("pending", "in-progress"):
            deadline = self._monotonic() + self.alias_timeout
            while state.job_status in ("pending", "in-progress") and self._monotonic() < deadline:
                self._sleep(0.5)
                state = self.provider.alias_state(plan.project)
        return state.production_id == target

    def verify(self, plan: PlanBase) -> Verification:
        assert isinstance(plan, CodePlan)
        state = self.provider.alias_state(plan.project)
        target = plan.to_deployment
        facts = {"production": state.production_id, "job_status": state.job_status}
        if state.production_id != target.uid:
            return Verification(False, f"production serves {state.production_id}, not {target.uid}", facts)
        return Verification(True, f"production serves {target.describe()}", facts)


def _alongside(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """Both reads at once, ``second`` on a thread of its own (in this context, for the logs): two
    round trips to the provider in the time of one. Either one's error is raised, ``first``'s
    when both fail."""
    result: list[B] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            result.append(second())
        except BaseException as error:  # handed to the caller, raised there
            failed.append(error)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="rollbot-read", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no thread to be had now: one after the other
        return first(), second()
    try:
        answer = first()
    except BaseException:
        thread.join()
        if failed:
            log.warning("the other read failed too: %s: %s", type(failed[0]).__name__, failed[0])
        raise
    thread.join()
    if failed:
        raise failed[0]
    return answer, result[0]


def _applied(state: AliasState, target: str) -> bool:
    """Production already serves the target, or a job to it is under way."""
    return state.production_id == target or (state.job_to == target and state.job_status in ("pending", "in-progress"))
