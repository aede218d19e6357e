"""Messages in the incident thread: team notification, progress, verification, reminders, failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from bot.blocks.incident import resolve_actions, step_lines
from bot.blocks.text import escape, mention, quote, sections, user
from handlers.durations import format_duration
from handlers.kind import RollbackKind, Verification
from handlers.model import HealthResult, Incident, StepRun
from handlers.plans import PlanBase
from handlers.runbook import POST_CHECKLIST

Block = dict[str, Any]


def _sections(text: str, ref: str) -> list[Block]:
    """``text`` in as many sections as Slack needs; anything beyond the message's room is counted
    and pointed to (`rollbot report`), never cut silently."""
    return sections(text.splitlines(), more=f"all of it is in `rollbot report {ref}`")


def notify_blocks(incident: Incident, mentions: Sequence[str], approvers: Sequence[str]) -> tuple[str, list[Block]]:
    who = " ".join(mention(m) for m in mentions) or "Team"
    roles = " or ".join(f"`{r}`" for r in approvers)
    text = (
        f":mega: {who}: {incident.ref} — {'a *drill* of a ' if incident.drill else ''}{incident.kind} rollback on "
        f"*{incident.env}* requested by "
        f"{user(incident.requester)}. Needs {incident.approvals_needed} approval(s) from {roles}."
    )
    return f"{incident.ref} needs approval", _sections(text, incident.ref)


def progress_blocks(incident: Incident, kind: RollbackKind, steps: Sequence[StepRun]) -> tuple[str, list[Block]]:
    lines = step_lines(list(steps), kind) or [":hourglass_flowing_sand: Starting"]
    who = f"approved by {user(incident.decided_by)}" if incident.decided_by else ""
    return (
        f"{incident.ref} progress",
        _sections(f"*Progress* · {incident.ref} {who}\n" + "\n".join(lines), incident.ref),
    )


def health_lines(health: Sequence[HealthResult]) -> str:
    if not health:
        return "_No health checks configured for this environment._"
    lines = []
    for h in sorted(health, key=lambda h: h.ok):  # failing first: what needs attention leads
        icon = ":large_green_circle:" if h.ok else ":red_circle:"
        status = f"HTTP {h.status}" if h.status is not None else (h.error or "no answer")
        lines.append(f"{icon} {escape(h.url)} — {status} in {h.latency_ms} ms")  # whole, however long
    return "\n".join(lines)


def verification_blocks(incident: Incident, result: Verification, health: Sequence[HealthResult], ok: bool,
                        monitor: Sequence[timedelta]) -> tuple[str, list[Block]]:
    head = (":white_check_mark: *Verified.*" if ok else ":warning: *Rolled back, but health checks fail.*")
    offsets = ", ".join("+" + format_duration(m) for m in monitor) or "none configured"
    text = (f"{head} Read back: {quote(result.detail, 500)}.\n{health_lines(health)}\n"
            f"Monitoring reminders at {offsets}.")
    if not ok:
        text += "\nEscalate now: check the error rates and consider a further rollback (runbook: *Monitor for issues*)."
    return (f"{incident.ref} verified" if ok else f"{incident.ref}: health checks failing"), _sections(text, incident.ref)


def reminder_blocks(incident: Incident, index: int, total: int, health: Sequence[HealthResult]) -> tuple[str, list[Block]]:
    healthy = all(h.ok for h in health)
    head = f":stopwatch: *Monitoring {index}/{total}* for {incident.ref} — " + (
        "all health checks pass." if healthy else "*health checks failing!*"
    )
    state = incident.checklist
    checklist = "\n".join(("☑ " if state.get(key) else "☐ ") + label for key, label in POST_CHECKLIST)
    done = sum(1 for key, _ in POST_CHECKLIST if state.get(key))
    blocks = [*_sections(head + "\n" + health_lines(health), incident.ref),
              *_sections(f"*Post-rollback checklist* ({done}/{len(POST_CHECKLIST)}, tick it on the incident message)\n"
                         + checklist, incident.ref)]
    if index == total:
        blocks += _sections("Monitoring window complete. Resolve the incident to write the post-incident summary.",
                            incident.ref)
        blocks.append(resolve_actions(incident))
    return f"{incident.ref} monitoring {index}/{total}", blocks


def failure_blocks(incident: Incident, error: str, next_step: str) -> tuple[str, list[Block]]:
    text = f":x: *{incident.ref} failed:* {quote(error, 6000)}\n*Next step:* {next_step}"
    return f"{incident.ref} failed", [*_sections(text, incident.ref), resolve_actions(incident)]


def closed_blocks(incident: Incident) -> tuple[str, list[Block]]:
    """The thread note when a request ends without a rollback: denied, cancelled or expired."""
    who = user(incident.requester)
    if incident.status.value == "denied":
        text = (f":no_entry: {who}, {incident.ref} was denied by {user(incident.decided_by or '')}: "
                f"{quote(incident.decision_note or '', 1000)}")
    elif incident.status.value == "cancelled":
        text = f":heavy_multiplication_x: {incident.ref} was cancelled by {user(incident.decided_by or '')}."
    else:
        text = (f":alarm_clock: {who}, {incident.ref} expired without enough approvals. Nothing was changed; "
                "request it again if it is still needed.")
    return f"{incident.ref} {incident.status.value}", _sections(text, incident.ref)


def plan_changed_blocks(incident: Incident, old: PlanBase) -> tuple[str, list[Block]]:
    (new_from, new_to), (old_from, old_to) = incident.plan.change, old.change
    text = (
        f":warning: *Production changed since {incident.ref} was requested.* The plan is now "
        f"`{quote(new_from, 60)}` → `{quote(new_to, 60)}` (was `{quote(old_from, 60)}` → "
        f"`{quote(old_to, 60)}`). Earlier approvals are void: approve the new plan above."
    )
    return f"{incident.ref}: plan changed, approve again", _sections(text, incident.ref)
