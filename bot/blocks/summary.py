"""The post-incident summary as Block Kit."""

from __future__ import annotations

from typing import Any

from bot.blocks.text import plain, quote, user

Block = dict[str, Any]


def summary_blocks(s: dict[str, Any]) -> tuple[str, list[Block]]:
    def ref(value: Any) -> str:
        if isinstance(value, dict):
            return f"`{quote(value['uid'], 60)}` (`{(value.get('commit_sha') or '')[:7]}`)"
        return f"`{quote(str(value), 60)}`"

    verdict = ""
    if s["within_target"] is not None:
        verdict = " :white_check_mark: within target" if s["within_target"] else " :warning: over target"
    approvers = ", ".join(user(a) for a in s["approvers"]) or "—"
    timeline = "\n".join(f"`+{t['offset']}` {t['what']} — {user(t['actor']) if t['actor'].startswith('U') else t['actor']}"
                         for t in s["timeline"][-25:])
    executed = "\n".join(f"• {e['step']}: {e['status']}" for e in s["executed"]) or "nothing executed"
    health = "\n".join(
        f"• {h['phase']}: {sum(1 for r in h['results'] if r.get('ok'))}/{len(h['results'])} passing" for h in s["health"]
    ) or "no health checks"
    checklist = "\n".join(("☑ " if c["done"] else "☐ ") + c["item"] for c in s["checklist"])
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": plain(f"Post-incident summary · {s['incident']}")}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*What*\n{s['kind']} rollback on *{quote(s['env'], 50)}*"},
            {"type": "mrkdwn", "text": f"*Outcome*\n{s['status']}"},
            {"type": "mrkdwn", "text": f"*From → To*\n{ref(s['from'])} → {ref(s['to'])}"},
            {"type": "mrkdwn", "text": f"*Time to rollback*\n{s['time_to_rollback'] or '—'} (target {s['target']}){verdict}"},
            {"type": "mrkdwn", "text": f"*Requested by*\n{user(s['requester'])}"},
            {"type": "mrkdwn", "text": f"*Approved by*\n{approvers}"},
        ]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Reason*\n" + (quote(s["reason"] or "") or "—")}},
        {"type": "section", "text": {"type": "mrkdwn", "text": ("*Timeline*\n" + timeline)[:3000]}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": ("*Executed*\n" + executed)[:2000]},
            {"type": "mrkdwn", "text": ("*Verification & health*\n" + health)[:2000]},
        ]},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"*Checklist* ({s['checklist_done']}/{len(s['checklist'])})\n{checklist}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Root cause*\n" + (quote(s["root_cause"] or "", 2900) or "—")}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Lessons learned*\n" + (quote(s["lessons"] or "", 2900) or "—")}},
        {"type": "context", "elements": [{"type": "mrkdwn",
                                          "text": f"Full report: `rollbot report {s['incident']}` · resolved by {user(s['resolved_by'] or '')}"}]},
    ]
    if s["failure"]:
        blocks.insert(3, {"type": "section", "text": {"type": "mrkdwn", "text": "*Failure*\n" + quote(s["failure"], 2900)}})
    return f"Post-incident summary for {s['incident']}", blocks
