"""Rebuilding production so restored env vars take effect: one redeploy of the current
production deployment, tagged so an unanswered one (or one sent by an executor that died) is
found instead of sent again; then READY, then serving (promoted when an instant rollback pinned
production). Used by the env kind (``handlers.env``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

from handlers.durations import format_duration
from handlers.kind import RollbackFailed, Run, Step
from handlers.ports import ProviderError

STEP_REDEPLOY = Step("env.redeploy", "Redeploy production")
FAILED_BUILD = ("ERROR", "CANCELED")
T = TypeVar("T")


@dataclass(frozen=True)
class Production:
    name: str  # the project's name (a redeploy names it)
    deployment: str | None  # what production serves
    pinned: bool  # an instant rollback stopped Vercel assigning new production deployments


class Redeploys(Protocol):
    def production(self, project: str) -> Production: ...

    def redeploy(self, name: str, deployment: str, tag: str) -> str:
        """One POST of a production deployment built from ``deployment``'s source with the
        variables as they are now, carrying ``tag`` in its meta; returns its id."""

    def find_redeploy(self, project: str, tag: str) -> str | None:
        """The deployment a redeploy tagged ``tag`` created, if Vercel has one."""

    def deployment_state(self, uid: str) -> str:
        """BUILDING, READY, ERROR, CANCELED, ..."""

    def promote(self, project: str, uid: str) -> None:
        """One promote request (production to ``uid``, automatic assignment back on)."""


def watch(read: Callable[[], T], done: Callable[[T], bool], within: float, run: Run,
          sleep: Callable[[float], None], monotonic: Callable[[], float]) -> tuple[T | None, bool]:
    """Read until ``done`` holds or ``within`` seconds pass, backing off; returns the last value
    read and whether any read succeeded (a read that fails says nothing either way)."""
    deadline = monotonic() + within
    interval = 0.1
    value: T | None = None
    read_once = False
    while True:
        run.hold()
        try:
            value, read_once = read(), True
        except ProviderError:
            pass
        if (read_once and done(value)) or monotonic() >= deadline:  # type: ignore[arg-type]
            return value, read_once
        sleep(interval)
        interval = min(interval * 2, 2.0)


class ProductionRedeploy:
    def __init__(self, provider: Redeploys, *, build_timeout: float, serve_timeout: float, uncertain_window: float,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.provider = provider
        self.build_timeout = build_timeout
        self.serve_timeout = serve_timeout
        self.uncertain_window = uncertain_window
        self._sleep = sleep
        self._monotonic = monotonic

    def send(self, run: Run, project: str, name: str, source: str, tag: str, attempts: int = 3) -> str:
        """The redeploy's id: one found by its tag, else one sent now (never twice)."""
        found = self.provider.find_redeploy(project, tag)  # sent by an earlier executor of this plan?
        if found:
            run.audit(STEP_REDEPLOY.name, "ok", deployment=found, why="already sent for this plan")
            return found
        for attempt in range(1, attempts + 1):
            run.hold()
            run.audit(STEP_REDEPLOY.name, "attempt", source=source, tag=tag)
            try:
                uid = self.provider.redeploy(name, source, tag)
            except ProviderError as error:
                run.audit(STEP_REDEPLOY.name, "uncertain" if error.uncertain else "refused", error=error.message,
                          status=error.status)
                if error.uncertain:
                    found, listed = watch(lambda: self.provider.find_redeploy(project, tag), bool,
                                          self.uncertain_window, run, self._sleep, self._monotonic)
                    if found:
                        run.audit(STEP_REDEPLOY.name, "ok", deployment=found, why=f"took effect despite: {error.message}")
                        return found
                    if not listed:  # an unreadable listing is no evidence: the outcome stays unknown
                        raise ProviderError("Vercel's deployments could not be listed after an unanswered redeploy; "
                                            "it is not sent again.", uncertain=True) from None
                    run.audit(STEP_REDEPLOY.name, "not_taken", why=f"no deployment tagged {tag} "
                                                                    f"in {self.uncertain_window:g}s")
                    if attempt < attempts:
                        continue
                elif error.refused_for_now and attempt < attempts:
                    self._sleep(min(error.retry_after or 2.0 * attempt, 20.0))
                    continue
                raise RollbackFailed(f"the variables are restored, but Vercel did not take the redeploy "
                                     f"({error.message}); production still runs the old values. Redeploy production "
                                     "in Vercel.") from None
            run.audit(STEP_REDEPLOY.name, "ok", deployment=uid, source=source)
            return uid
        raise AssertionError("unreachable")

    def wait_built(self, uid: str, run: Run) -> None:
        deadline = self._monotonic() + self.build_timeout
        interval = 0.2
        while True:
            run.hold()
            state = self.provider.deployment_state(uid)
            if state == "READY":
                run.audit("vercel.build", "ok", deployment=uid)
                return
            if state in FAILED_BUILD:
                raise RollbackFailed(f"the variables are restored, but the rebuilt deployment {uid} ended {state}; "
                                     "production still runs the old values. Check the build in Vercel.")
            if self._monotonic() >= deadline:
                raise ProviderError(f"the rebuilt deployment {uid} was not READY within "
                                    f"{format_duration(timedelta(seconds=self.build_timeout))} (state {state})")
            self._sleep(interval)
            interval = min(interval * 1.5, 5.0)

    def wait_serving(self, project: str, uid: str, run: Run) -> None:
        production = self.provider.production(project)
        if production.deployment != uid and production.pinned:
            run.hold()
            run.audit("vercel.promote", "attempt", deployment=uid, why="production is pinned by an instant rollback")
            try:
                self.provider.promote(project, uid)
            except ProviderError as error:
                run.audit("vercel.promote", "uncertain" if error.uncertain else "refused", error=error.message)
                if not error.uncertain:
                    raise RollbackFailed(f"the variables are restored and {uid} is built, but Vercel refused to "
                                         f"promote it ({error.message}); promote it in Vercel.") from None
        deadline = self._monotonic() + self.serve_timeout
        interval = 0.2
        while production.deployment != uid:
            if self._monotonic() >= deadline:
                raise ProviderError(f"{uid} is READY but production still serves {production.deployment} after "
                                    f"{int(self.serve_timeout)}s")
            self._sleep(interval)
            interval = min(interval * 1.5, 5.0)
            run.hold()
            production = self.provider.production(project)
        run.audit("vercel.serving", "ok", deployment=uid)
