"""Step 6: the post-incident summary, built from the incident and its audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handlers.durations import format_duration
from handlers.model import Incident, StepRun
from handlers.ports import AuditEntry
from handlers.runbook import checklist_groups, target_for

_TIMELINE_ACTIONS = {
    "request.code": "Requested",
    "notify_team": "Team notified",
    "approve": "Approved",
    "deny": "Denied",
    "cancel": "Cancelled",
    "expire": "Expired",
    "vercel.rollback": "Vercel rollback requested",
    "vercel.alias": "Production alias moved",
    "verify": "Verified",
    "remind": "Monitoring reminder",
    "execute": "Execution",
}


def build_summary(incident: Incident, steps: list[StepRun], audit: list[AuditEntry]) -> dict[str, Any]:
    """Everything the post-incident summary shows, as plain JSON-able data."""
    target, risk = target_for(incident.kind)
    ttr = (incident.rolled_back_at - incident.created_at) if incident.rolled_back_at else None
    timeline = []
    for entry in audit:
        if entry.action in _TIMELINE_ACTIONS and entry.outcome != "refused":
            timeline.append({
                "at": entry.at.isoformat(),
                "offset": format_duration(entry.at - incident.created_at),
                "what": _TIMELINE_ACTIONS[entry.action] + ("" if entry.outcome == "ok" else f" ({entry.outcome})"),
                "actor": entry.actor,
            })
    if incident.resolution:
        timeline.append({
            "at": incident.resolution.at.isoformat(),
            "offset": format_duration(incident.resolution.at - incident.created_at),
            "what": "Resolved",
            "actor": incident.resolution.resolved_by,
        })
    timeline.sort(key=lambda t: t["at"])
    health = [
        {"phase": e.detail.get("phase"), "at": e.at.isoformat(), "results": e.detail.get("results", [])}
        for e in audit if e.action == "health_check"
    ]
    checklist = [{"item": label, "done": done, "group": group}
                 for group, items in checklist_groups(incident.checklist) for _, label, done in items]
    refused = [
        {"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "reason": e.detail.get("reason")}
        for e in audit if e.outcome == "refused"
    ]
    plan = incident.plan
    return {
        "incident": incident.ref,
        "kind": incident.kind,
        "env": incident.env,
        "status": incident.status.value,
        "reason": incident.reason,
        "requester": incident.requester,
        "approvers": [a.approver for a in incident.valid_approvals()],
        "from": plan.from_deployment.to_json() if plan.from_deployment else plan.from_ref,
        "to": plan.to_deployment.to_json() if plan.to_deployment else plan.to_ref,
        "created_at": incident.created_at.isoformat(),
        "rolled_back_at": _iso(incident.rolled_back_at),
        "verified_at": _iso(incident.verified_at),
        "finished_at": _iso(incident.finished_at),
        "time_to_rollback": format_duration(ttr) if ttr is not None else None,
        "time_to_rollback_seconds": ttr.total_seconds() if ttr is not None else None,
        "target": format_duration(target),
        "target_seconds": target.total_seconds(),
        "within_target": (ttr <= target) if ttr is not None else None,
        "risk": risk,
        "executed": [
            {"step": s.name, "status": s.status, "detail": s.detail, "at": _iso(s.finished_at or s.started_at)}
            for s in steps if s.name in ("vercel.rollback", "vercel.alias", "verify")
        ],
        "health": health,
        "checklist": checklist,
        "checklist_done": sum(1 for c in checklist if c["done"]),
        "failure": incident.failure,
        "root_cause": incident.resolution.root_cause if incident.resolution else None,
        "lessons": incident.resolution.lessons if incident.resolution else None,
        "resolved_by": incident.resolution.resolved_by if incident.resolution else None,
        "timeline": timeline,
        "refused_attempts": refused,
    }


def render_markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown, for `rollbot report` and for pasting into a post-mortem."""
    s = summary
    lines = [
        f"# {s['incident']}: {s['kind']} rollback on {s['env']} ({s['status']})",
        "",
        f"- Reason: {s['reason'] or '—'}",
        f"- Requested by: {s['requester']}; approved by: {', '.join(s['approvers']) or '—'}",
        f"- From: {_ref(s['from'])} → To: {_ref(s['to'])}",
        f"- Time to rollback: {s['time_to_rollback'] or 'not rolled back'} (target {s['target']}, risk {s['risk']})"
        + ("" if s["within_target"] is None else (" ✅ within target" if s["within_target"] else " ⚠️ over target")),
        f"- Checklist: {s['checklist_done']}/{len(s['checklist'])} done",
    ]
    if s["failure"]:
        lines.append(f"- Failure: {s['failure']}")
    lines += ["", "## Timeline", ""]
    lines += [f"- {t['at']} (+{t['offset']}) {t['what']} — {t['actor']}" for t in s["timeline"]]
    lines += ["", "## Executed", ""]
    lines += [f"- {e['step']}: {e['status']} {e['detail']}" for e in s["executed"]] or ["- nothing"]
    lines += ["", "## Health checks", ""]
    for h in s["health"]:
        oks = sum(1 for r in h["results"] if r.get("ok"))
        lines.append(f"- {h['phase']}: {oks}/{len(h['results'])} passing")
    lines += ["", "## Root cause", "", s["root_cause"] or "—", "", "## Lessons learned", "", s["lessons"] or "—"]
    if s["refused_attempts"]:
        lines += ["", "## Refused attempts", ""]
        lines += [f"- {r['at']} {r['actor']} {r['action']}: {r['reason']}" for r in s["refused_attempts"]]
    return "\n".join(lines) + "\n"


def _ref(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value['uid']} ({(value.get('commit_sha') or '')[:7]}, {value.get('author') or '?'})"
    return str(value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
