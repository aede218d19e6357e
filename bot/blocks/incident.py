"""The incident's root message: what, where, from -> to, who, why, target, checklist, buttons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.blocks.plans import PlanRenderer
from bot.blocks.text import chunks, plain, quote, sections, user, when
from handlers.config import EnvironmentPolicy
from handlers.durations import format_duration
from handlers.kind import RollbackKind
from handlers.model import Incident, Status, StepRun
from handlers.runbook import checklist_groups, matrix_target

Block = dict[str, Any]

STATUS_LINE = {
    Status.PENDING: ":hourglass_flowing_sand: Waiting for approval",
    Status.EXECUTING: ":gear: Approved, rolling back",
    Status.MONITORING: ":eyes: Rolled back, monitoring",
    Status.RESOLVED: ":white_check_mark: Resolved",
    Status.DENIED: ":no_entry: Denied",
    Status.EXPIRED: ":alarm_clock: Expired without approval",
    Status.CANCELLED: ":heavy_multiplication_x: Cancelled",
    Status.FAILED: ":x: Failed",
}


def root_blocks(incident: Incident, kind: RollbackKind, policy: EnvironmentPolicy, now: datetime,
                renderer: PlanRenderer) -> list[Block]:
    rule = policy.rule(incident.kind)
    fields = [
        *renderer.fields(incident.plan, now)[:4],
        f"*Requested by*\n{user(incident.requester)} at {when(incident.created_at)}",
        _target(incident, kind),
        "*Approval*\n" + _rule(rule.approvers, rule.approvals, policy.self_approval),
    ]
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": plain(f"{incident.ref} · {'DRILL · ' if incident.drill else ''}{kind.title} · {incident.env}")}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _status(incident)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": text} for text in fields]},
        *sections(("*Reason*\n" + (quote(incident.reason, 8000) or "_none given_")).splitlines(), most=3,
                  more=f"`rollbot report {incident.ref}`"),
    ]
    blocks.extend(_checklists(incident))
    if incident.status is Status.PENDING:
        value = f"{incident.id}:{incident.plan_hash}"
        blocks.append({
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {"type": "button", "action_id": "approve", "style": "primary", "value": value,
                 "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "action_id": "deny", "style": "danger", "value": value,
                 "text": {"type": "plain_text", "text": "Deny"}},
            ],
        })
    elif incident.status is Status.MONITORING or (incident.status is Status.FAILED and incident.resolution is None):
        blocks.append(resolve_actions(incident))
    context = [f"Plan `{incident.plan_hash}` — approvals are bound to exactly this plan."]
    approved = [f":heavy_check_mark: Approved by {user(a.approver)} at {when(a.at)}" for a in incident.valid_approvals()]
    # Slack allows 10 elements in a context block: the approvals share them, none is left out.
    context += chunks(approved, 2000) if len(approved) > 7 else approved
    if incident.status is Status.DENIED and incident.decided_by:
        context.append(f":no_entry: Denied by {user(incident.decided_by)}: {quote(incident.decision_note or '', 500)}")
    if incident.status is Status.CANCELLED and incident.decided_by:
        context.append(f"Cancelled by {user(incident.decided_by)}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in context[:10]]})
    return blocks


def _target(incident: Incident, kind: RollbackKind) -> str:
    target, risk = matrix_target(incident.issue, kind.target, kind.risk)
    row = f"\n{quote(incident.issue or '', 40)} · severity {quote(incident.severity or '', 20)}" if incident.issue else ""
    return f"*Target (decision matrix)*\n{format_duration(target)} · risk {risk}{row}"


def root_text(incident: Incident, kind: RollbackKind) -> str:
    """Notification fallback text (no mentions, no user text)."""
    drill = "drill: " if incident.drill else ""
    return f"{incident.ref}: {drill}{kind.title} on {incident.env} — {incident.status.value}"


def resolve_actions(incident: Incident) -> Block:
    return {
        "type": "actions",
        "block_id": "resolution",
        "elements": [{"type": "button", "action_id": "resolve", "value": str(incident.id), "style": "primary",
                      "text": {"type": "plain_text", "text": f"Resolve {incident.ref}"}}],
    }


def _status(incident: Incident) -> str:
    line = f"*Status:* {STATUS_LINE[incident.status]}"
    if incident.status is Status.PENDING:
        line += f" ({len(incident.valid_approvals())} of {incident.approvals_needed}) · expires {when(incident.expires_at)}"
    if incident.status is Status.FAILED and incident.failure:
        line += f" — {quote(incident.failure, 500)}"
    return line


def _rule(approvers: tuple[str, ...], count: int, self_approval: bool) -> str:
    roles = " or ".join(f"`{r}`" for r in approvers)
    return f"{count} × {roles}" + ("" if self_approval else ", not the requester")


def _checklists(incident: Incident) -> list[Block]:
    """The runbook's checklists as checkboxes: pre-rollback from the start, post-rollback once
    the rollback is verified. The block id carries the group and the incident."""
    blocks = []
    for group, items in checklist_groups(incident.checklist):
        options: list[dict[str, Any]] = [{"text": {"type": "mrkdwn", "text": label}, "value": key}
                                         for key, label, _ in items]
        checked = [o for o, (_, _, done) in zip(options, items, strict=True) if done]
        element: dict[str, Any] = {"type": "checkboxes", "action_id": "checklist", "options": options}
        if checked:
            element["initial_options"] = checked
        title = "Pre-rollback checklist" if group == "pre" else "Post-rollback checklist"
        blocks.append({
            "type": "section",
            "block_id": f"checklist-{group}-{incident.id}",
            "text": {"type": "mrkdwn", "text": f"*{title}* ({len(checked)}/{len(options)})"},
            "accessory": element,
        })
    return blocks


def step_lines(steps: list[StepRun], kind: RollbackKind) -> list[str]:
    icons = {"running": ":hourglass_flowing_sand:", "ok": ":white_check_mark:", "failed": ":x:", "skipped": ":fast_forward:"}
    names = {step.name: step.label for step in kind.steps} | {"verify": "Verify (read-back + health checks)"}
    return [f"{icons.get(s.status, '•')} {names.get(s.name, s.name)}" + (f" — {quote(s.detail, 300)}" if s.detail else "")
            for s in steps]
