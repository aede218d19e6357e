"""The bundle of ports the core works with, wired once by ``bot.bootstrap``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from structlog.contextvars import bind_contextvars

from handlers.clock import Clock
from handlers.config import Policy
from handlers.kind import KindRegistry
from handlers.model import Incident, StepRun
from handlers.ports import Directory, HealthChecker, IncidentStore, LiveState, NoTelemetry, Notifier, Telemetry
from handlers.precedence import Precedence
from handlers.roles import Roles

log = logging.getLogger("rollbot.core")
REDRAW_ROUNDS = 3


def bind_incident(incident: Incident) -> None:
    """Name the incident (``RB-n``), its kind and its environment on every log line from here
    until the end of this request, job or execution (bot.logs: each runs in its own context)."""
    bind_contextvars(incident=incident.ref, kind=incident.kind, env=incident.env)


class Refused(Exception):
    """A user's request was refused; ``message`` says why and is shown to that user only."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Services:
    policy: Policy
    store: IncidentStore
    live: LiveState
    notifier: Notifier
    kinds: KindRegistry
    health: HealthChecker
    directory: Directory
    clock: Clock
    telemetry: Telemetry = field(default_factory=NoTelemetry)
    precedence: Precedence = field(default_factory=Precedence)  # provider calls first (handlers.precedence)
    roles: Roles = field(init=False)

    def __post_init__(self) -> None:
        self.roles = Roles(self.policy, self.directory)

    def audit(self, incident_id: int | None, actor: str, action: str, outcome: str, **detail: Any) -> None:
        """Append to the audit log; a refused attempt is recorded like any other."""
        self.store.audit(incident_id, actor, action, outcome, detail, self.clock.now())
        log.info("audit %s %s %s", action, outcome, actor, extra={"incident": incident_id})
        if outcome == "refused" and actor != "rollbot":  # a person's attempt (a provider's refusal is a call's status)
            self.telemetry.refused(action, str(detail.get("code") or "other"))

    def redraw_root(self, incident_id: int, *, with_steps: bool = True) -> None:
        """Redraw the incident's root message from the stored state. If the state changed while
        it was drawn (another process moved the incident on, and its drawing may have landed
        first), draw again: the last drawing Slack keeps is never older than the last change."""
        drawn: tuple[object, object] | None = None
        for _ in range(REDRAW_ROUNDS):
            found = self.store.incident_with_steps(incident_id) if with_steps else self._without_steps(incident_id)
            if found is None:
                return
            incident, steps = found
            if (incident, steps) == drawn:
                return
            self.notifier.refresh_root(incident, steps)
            drawn = (incident, steps)

    def _without_steps(self, incident_id: int) -> tuple[Incident, list[StepRun]] | None:
        incident = self.store.get(incident_id)
        return None if incident is None else (incident, [])

    def tick(self, incident_id: int, key: str) -> bool:
        """The bot ticks a checklist item it has done itself (audited as Rollbot's); True when it
        changed something (the caller redraws)."""
        incident = self.store.get(incident_id)
        if incident is None or incident.checklist.get(key, True):
            return False
        if self.store.set_checklist(incident_id, key, True) is None:
            return False
        self.audit(incident_id, "rollbot", "checklist", "ok", item=key, checked=True)
        return True

    def refuse(self, incident_id: int | None, actor: str, action: str, message: str, *, code: str | None = None,
               **detail: Any) -> Refused:
        """Audit a refusal and make the exception that tells the user; ``code`` (or the
        message's own, a ``Why``) is its short reason for the audit log and the metrics."""
        why = code or getattr(message, "code", None) or "other"
        self.audit(incident_id, actor, action, "refused", reason=str(message), code=why, **detail)
        return Refused(str(message))
