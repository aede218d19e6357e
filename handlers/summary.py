"""Step 6: the post-incident summary, a typed model built from the incident and its audit log.

Stored as jsonb with the incident, posted in Slack, printed by ``rollbot report``; the same for
every kind (the kind contributes its title, its steps' labels and its plan).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from handlers.durations import format_duration
from handlers.kind import RollbackKind
from handlers.model import FOLLOW_UP_CATEGORIES, FollowUp, Incident, NewFollowUp, StepRun
from handlers.ports import AuditEntry
from handlers.runbook import checklist_groups, matrix_target

_TIMELINE = {
    "notify_team": "Team notified",
    "approve": "Approved",
    "deny": "Denied",
    "cancel": "Cancelled",
    "expire": "Expired",
    "verify": "Verified",
    "remind": "Monitoring reminder",
    "execute": "Execution",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimelineEntry(_Model):
    at: datetime
    offset: str
    what: str
    actor: str


class ExecutedStep(_Model):
    step: str
    label: str
    status: str
    detail: str
    at: datetime | None


class HealthRound(_Model):
    phase: str | None
    at: datetime
    results: list[dict[str, Any]]

    @property
    def passing(self) -> int:
        return sum(1 for r in self.results if r.get("ok"))


class ChecklistItem(_Model):
    item: str
    done: bool
    group: str
    by: str | None = None  # who ticked it last ("rollbot" for what the bot did itself)


class RefusedAttempt(_Model):
    at: datetime
    actor: str
    action: str
    reason: str | None


class FollowUpItem(_Model):
    category: str  # "docs" or "tests"
    text: str
    owner: str
    status: str  # "open" or "done"
    done_by: str | None = None
    done_at: datetime | None = None

    @property
    def label(self) -> str:
        return FOLLOW_UP_CATEGORIES.get(self.category, self.category)


class Summary(_Model):
    """Everything the post-incident summary shows."""

    incident: str
    kind: str
    title: str
    env: str
    status: str
    reason: str
    requester: str
    approvers: list[str]
    drill: bool = False
    change_from: str
    change_to: str
    plan: dict[str, Any]
    created_at: datetime
    rolled_back_at: datetime | None
    verified_at: datetime | None
    finished_at: datetime | None
    time_to_rollback: str | None
    time_to_rollback_seconds: float | None
    target: str
    target_seconds: float
    within_target: bool | None
    risk: str
    issue: str | None = None  # the decision matrix's row it was started from, and the severity chosen
    severity: str | None = None
    executed: list[ExecutedStep]
    health: list[HealthRound]
    checklist: list[ChecklistItem]
    checklist_done: int
    failure: str | None
    root_cause: str | None
    lessons: str | None
    resolved_by: str | None
    timeline: list[TimelineEntry]
    refused_attempts: list[RefusedAttempt]
    follow_ups: list[FollowUpItem] = []

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def follow_up_items(follow_ups: Sequence[FollowUp | NewFollowUp]) -> list[FollowUpItem]:
    """As the summary lists them: a new one (not stored yet) is open."""
    return [FollowUpItem(category=f.category, text=f.text, owner=f.owner,
                         status="done" if isinstance(f, FollowUp) and f.done else "open",
                         done_by=f.done_by if isinstance(f, FollowUp) else None,
                         done_at=f.done_at if isinstance(f, FollowUp) else None) for f in follow_ups]


def with_follow_ups(summary: Summary, follow_ups: Sequence[FollowUp]) -> Summary:
    """The stored summary with the follow-ups as they stand now (done since, or not)."""
    return summary.model_copy(update={"follow_ups": follow_up_items(follow_ups)})


def build_summary(incident: Incident, kind: RollbackKind, steps: list[StepRun], audit: list[AuditEntry],
                  follow_ups: Sequence[FollowUp | NewFollowUp] = ()) -> Summary:
    labels = {step.name: step.label for step in kind.steps}
    actions = {**_TIMELINE, f"request.{incident.kind}": "Requested", f"drill.{incident.kind}": "Drill requested",
               **labels}
    ttr = (incident.rolled_back_at - incident.created_at) if incident.rolled_back_at else None
    timeline = [
        TimelineEntry(at=e.at, offset=format_duration(e.at - incident.created_at),
                      what=actions[e.action] + ("" if e.outcome == "ok" else f" ({e.outcome})"), actor=e.actor)
        for e in audit if e.action in actions and e.outcome != "refused"
    ]
    if incident.resolution:
        timeline.append(TimelineEntry(at=incident.resolution.at, what="Resolved", actor=incident.resolution.resolved_by,
                                      offset=format_duration(incident.resolution.at - incident.created_at)))
    timeline.sort(key=lambda t: t.at)
    ticked_by = {e.detail.get("item"): e.actor for e in audit
                 if e.action == "checklist" and e.outcome == "ok" and e.detail.get("checked", True)}
    # Items done with no audit row were ticked by Rollbot when the request was made (the command
    # itself determined the type and documented the steps).
    checklist = [ChecklistItem(item=label, done=done, group=group, by=(ticked_by.get(key) or "rollbot") if done else None)
                 for group, items in checklist_groups(incident.checklist) for key, label, done in items]
    change_from, change_to = incident.plan.change
    target, risk = matrix_target(incident.issue, kind.target, kind.risk)
    order = [*labels, "verify"]  # the kind's steps in the order it declares them
    shown = set(order)
    return Summary(
        incident=incident.ref, kind=incident.kind, title=kind.title + (" (drill)" if incident.drill else ""),
        env=incident.env, drill=incident.drill,
        status=incident.status.value, reason=incident.reason, requester=incident.requester,
        approvers=[a.approver for a in incident.valid_approvals()],
        change_from=change_from, change_to=change_to, plan=incident.plan.to_json(),
        created_at=incident.created_at, rolled_back_at=incident.rolled_back_at, verified_at=incident.verified_at,
        finished_at=incident.finished_at,
        time_to_rollback=format_duration(ttr) if ttr is not None else None,
        time_to_rollback_seconds=ttr.total_seconds() if ttr is not None else None,
        target=format_duration(target), target_seconds=target.total_seconds(),
        within_target=(ttr <= target) if ttr is not None else None, risk=risk,
        issue=incident.issue, severity=incident.severity,
        executed=[ExecutedStep(step=s.name, label=labels.get(s.name, "Verify (read-back + health checks)"),
                               status=s.status, detail=s.detail, at=s.finished_at or s.started_at)
                  for s in sorted((s for s in steps if s.name in shown), key=lambda s: order.index(s.name))],
        health=[HealthRound(phase=e.detail.get("phase"), at=e.at, results=e.detail.get("results", []))
                for e in audit if e.action == "health_check"],
        checklist=checklist, checklist_done=sum(1 for c in checklist if c.done),
        failure=incident.failure,
        root_cause=incident.resolution.root_cause if incident.resolution else None,
        lessons=incident.resolution.lessons if incident.resolution else None,
        resolved_by=incident.resolution.resolved_by if incident.resolution else None,
        timeline=timeline,
        refused_attempts=[RefusedAttempt(at=e.at, actor=e.actor, action=e.action, reason=e.detail.get("reason"))
                          for e in audit if e.outcome == "refused"],
        follow_ups=follow_up_items(follow_ups),
    )


def render_markdown(s: Summary) -> str:
    """The summary as Markdown, for `rollbot report` and for pasting into a post-mortem."""
    verdict = "" if s.within_target is None else (" ✅ within target" if s.within_target else " ⚠️ over target")
    lines = [
        f"# {s.incident}: {s.title} on {s.env} ({s.status})",
        "",
        f"- Reason: {s.reason or '—'}",
        f"- Requested by: {s.requester}; approved by: {', '.join(s.approvers) or '—'}",
        f"- From: {s.change_from} → To: {s.change_to}",
        f"- Time to rollback: {s.time_to_rollback or 'not rolled back'} (target {s.target}, risk {s.risk}"
        + (f"; decision matrix: {s.issue}, severity {s.severity}" if s.issue else "") + f"){verdict}",
        f"- Checklist: {s.checklist_done}/{len(s.checklist)} done: "
        + (", ".join(f"{c.item} ({c.by})" for c in s.checklist if c.done) or "none"),
    ]
    if s.failure:
        lines.append(f"- Failure: {s.failure}")
    lines += ["", "## Timeline", ""]
    lines += [f"- {t.at.isoformat()} (+{t.offset}) {t.what} — {t.actor}" for t in s.timeline]
    lines += ["", "## Executed", ""]
    lines += [f"- {e.label}: {e.status} {e.detail}" for e in s.executed] or ["- nothing"]
    lines += ["", "## Health checks", ""]
    lines += [f"- {h.phase}: {h.passing}/{len(h.results)} passing" for h in s.health]
    lines += ["", "## Root cause", "", s.root_cause or "—", "", "## Lessons learned", "", s.lessons or "—"]
    lines += ["", "## Follow-ups", ""]
    lines += [f"- [{'x' if f.status == 'done' else ' '}] {f.label}: {f.text} — owner {f.owner}"
              + (f" (done by {f.done_by} at {f.done_at.isoformat()})" if f.done_at else " (open)")
              for f in s.follow_ups] or ["- none"]
    if s.refused_attempts:
        lines += ["", "## Refused attempts", ""]
        lines += [f"- {r.at.isoformat()} {r.actor} {r.action}: {r.reason}" for r in s.refused_attempts]
    return "\n".join(lines) + "\n"
