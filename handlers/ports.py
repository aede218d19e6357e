"""Ports: what the core needs from the outside world, as typing.Protocols.

Adapters in ``integrations/`` and ``bot/`` implement them; tests use hand-written fakes
(``tests/fakes``). The store's ports, one per role, are in ``handlers.store`` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from handlers.kind import Verification
from handlers.model import FollowUp, HealthResult, Incident, StepRun
from handlers.plans import PlanBase

if TYPE_CHECKING:
    from handlers.drills import StandingReminder
    from handlers.summary import Summary


class ProviderError(Exception):
    """A provider call failed; ``message`` is safe to show (no secrets)."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 uncertain: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.uncertain = uncertain  # the call may have taken effect: read back before retrying
        self.retry_after = retry_after  # refused for now (429): safe to send again after this wait

    @property
    def refused_for_now(self) -> bool:
        """Certainly not performed, and worth sending again (rate limited, or not connected)."""
        return not self.uncertain and (self.status == 429 or self.code == "unreachable")


class DeliveryFailed(Exception):
    """A message could not be delivered. ``definite``: certainly not posted (safe to retry);
    otherwise it may have been posted (retrying could duplicate it)."""

    def __init__(self, message: str, *, definite: bool) -> None:
        super().__init__(message)
        self.definite = definite


class HealthChecker(Protocol):
    def check(self, urls: Sequence[str]) -> list[HealthResult]: ...


class DirectoryUnavailable(Exception):
    """A user group could not be read (and no earlier copy is known)."""


class Directory(Protocol):
    def group_members(self, group_id: str) -> frozenset[str]:
        """Members of a Slack user group; raises DirectoryUnavailable."""


class LiveState(Protocol):
    """Fast, rebuildable state (Redis). Never the only guard of a decision."""

    def first_delivery(self, key: str, ttl_seconds: int = 600) -> bool: ...
    def thread_refs(self, incident_id: int) -> dict[str, str] | None: ...
    def remember_thread(self, incident_id: int, refs: dict[str, str]) -> None: ...
    def throttle(self, key: str, per_second: float, burst: int = 1) -> float:
        """Shared outbound pacing: 0 to go now, else seconds to wait."""


class Telemetry(Protocol):
    """What the core reports for the metrics (bot.metrics: Prometheus). Labels are short codes
    and names from the policy, never user text."""

    def refused(self, action: str, code: str) -> None:
        """A refused attempt (``action`` as audited: approve, request.code, …; ``code``: Why.code)."""

    def approved(self, kind: str, env: str, decided: bool) -> None:
        """An approval recorded; ``decided`` when it completed the quorum."""

    def rolled_back(self, kind: str, env: str, outcome: str, seconds: float | None, target_seconds: float) -> None:
        """An execution ended: ``outcome`` verified, unhealthy or failed; ``seconds`` from the
        request to the provider's change (None when it never changed), against the decision
        matrix's target for the incident."""

    def job_finished(self, kind: str, outcome: str) -> None:
        """A due job ran: ``outcome`` done, or retry (it failed and is due again later)."""


class NoTelemetry:
    """Reports nothing: the core without metrics wired (the unit tier, scripts)."""

    def refused(self, action: str, code: str) -> None:
        pass

    def approved(self, kind: str, env: str, decided: bool) -> None:
        pass

    def rolled_back(self, kind: str, env: str, outcome: str, seconds: float | None, target_seconds: float) -> None:
        pass

    def job_finished(self, kind: str, outcome: str) -> None:
        pass


class Notifier(Protocol):
    """Speaks to the humans (Slack). Renders domain objects; decides nothing.

    Each message is posted at most once per identity and, when an attempt's outcome is unknown,
    settled by reading Slack back before any new attempt: exactly once as long as Slack answers.
    Updates and thread notes are best effort (a failure is logged, never raised), so a Slack
    outage cannot fail a rollback. ``post_root``, ``reminder``, ``summary`` and
    ``standing_reminder`` raise DeliveryFailed, because their callers retry or undo."""

    def post_root(self, incident: Incident, steps: Sequence[StepRun]) -> tuple[str, str]:
        """Post the root message (or adopt it, if an earlier attempt did post it); returns
        (channel, ts)."""

    def find_root(self, incident: Incident) -> tuple[str, str] | None:
        """Where an earlier attempt posted the root message, or None if it never did; raises
        DeliveryFailed when Slack cannot say."""

    def refresh_root(self, incident: Incident, steps: Sequence[StepRun]) -> None: ...
    def notify_team(self, incident: Incident, mentions: Sequence[str]) -> None: ...
    def progress(self, incident: Incident, steps: Sequence[StepRun]) -> str | None:
        """Post the progress message the first time, update it in place after; returns its ts."""

    def verification(self, incident: Incident, result: Verification, health: Sequence[HealthResult], ok: bool) -> None: ...
    def reminder(self, incident: Incident, index: int, total: int, health: Sequence[HealthResult]) -> None:
        """Post the monitoring reminder; raises DeliveryFailed."""
    def failure(self, incident: Incident, error: str, next_step: str) -> None: ...
    def summary(self, incident: Incident, summary: Summary) -> str:
        """Post the summary in the channel (and link it in the thread); raises DeliveryFailed."""
    def plan_changed(self, incident: Incident, old: PlanBase) -> None: ...
    def closed(self, incident: Incident) -> None:
        """A request ended without a rollback (denied, cancelled, expired): tell the thread."""
    def tell(self, channel: str, user: str, text: str) -> None: ...
    def answer(self, channel: str, response_url: str | None, user: str, text: str) -> None:
        """Answer a command where it was typed: by its ``response_url`` (an ephemeral, which works
        where the bot is not a member), else an ephemeral in ``channel``. Best effort."""
    def standing_reminder(self, reminder: StandingReminder) -> str:
        """Post a drill or review reminder in ``[drills] channel`` (once: reminder ``seq`` of its
        series); returns its ts; raises DeliveryFailed."""
    def refresh_summary(self, incident: Incident, summary: Summary) -> None:
        """Redraw the posted summary (the follow-ups' status changed)."""
    def follow_up(self, incident: Incident, follow_up: FollowUp, round_: int) -> None:
        """DM the owner reminder ``round_`` of an open follow-up, with a "Mark done" button, once
        (never read back: an unknown outcome raises DeliveryFailed, not definite); raises DeliveryFailed."""
    def follow_up_done(self, incident: Incident, follow_up: FollowUp, channel: str, ts: str) -> None:
        """Redraw the DM at ``channel``/``ts`` as done, without its button."""


from handlers.store import (  # noqa: E402 - re-exported; the store's ports use the types above
    ApprovalOutcome,
    Approvals,
    AuditEntry,
    AuditLog,
    DueJob,
    Executions,
    Incidents,
    IncidentStore,
    Jobs,
    Ledgers,
    LockHeld,
    MessageRecord,
    Messages,
    NewIncident,
    NewJob,
    Standing,
    StandingRecord,
    Steps,
)

__all__ = [
    "ApprovalOutcome", "Approvals", "AuditEntry", "AuditLog", "DeliveryFailed", "Directory", "DirectoryUnavailable",
    "DueJob", "Executions", "HealthChecker", "IncidentStore", "Incidents", "Jobs", "Ledgers", "LiveState", "LockHeld",
    "MessageRecord", "Messages", "NewIncident", "NewJob", "Notifier", "ProviderError", "Standing", "StandingRecord",
    "Steps",
]
