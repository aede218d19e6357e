"""The post-incident summary as Block Kit."""

from __future__ import annotations

from typing import Any

from bot.blocks.follow_ups import follow_up_lines
from bot.blocks.text import plain, quote, sections, user
from handlers.summary import Summary, TimelineEntry

Block = dict[str, Any]
TIMELINE_SHOWN = 24  # entries; a longer timeline keeps its start and end and says how many are left out


def summary_blocks(s: Summary) -> tuple[str, list[Block]]:
    verdict = ""
    if s.within_target is not None:
        verdict = " :white_check_mark: within target" if s.within_target else " :warning: over target"
    approvers = ", ".join(user(a) for a in s.approvers) or "—"
    executed = "\n".join(f"• {e.label}: {e.status}" for e in s.executed) or "nothing executed"
    health = "\n".join(f"• {h.phase}: {h.passing}/{len(h.results)} passing" for h in s.health) or "no health checks"
    checklist = "\n".join(("☑ " if c.done else "☐ ") + c.item + (f" — {_by(c.by)}" if c.done and c.by else "")
                          for c in s.checklist)
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": plain(f"Post-incident summary · {s.incident}")}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*What*\n{quote(s.title, 60)} on *{quote(s.env, 50)}*"},
            {"type": "mrkdwn", "text": f"*Outcome*\n{s.status}"},
            {"type": "mrkdwn", "text": f"*From → To*\n`{quote(s.change_from, 60)}` → `{quote(s.change_to, 60)}`"},
            {"type": "mrkdwn", "text": f"*Time to rollback*\n{s.time_to_rollback or '—'} (target {s.target}"
                                       + (f", decision matrix: {quote(s.issue, 40)} · {quote(s.severity or '', 20)}"
                                          if s.issue else "") + f"){verdict}"},
            {"type": "mrkdwn", "text": f"*Requested by*\n{user(s.requester)}"},
            {"type": "mrkdwn", "text": f"*Approved by*\n{approvers}"},
        ]},
        *sections(("*Reason*\n" + (quote(s.reason or "", 8000) or "—")).splitlines(), most=3,
                  more=f"`rollbot report {s.incident}`"),
        *(sections(("*Failure*\n" + quote(s.failure, 6000)).splitlines(), most=3, more=f"`rollbot report {s.incident}`")
          if s.failure else []),
        *sections(("*Timeline*\n" + _timeline(s)).splitlines(), most=3, more=f"`rollbot report {s.incident}`"),
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": ("*Executed*\n" + executed)[:2000]},
            {"type": "mrkdwn", "text": ("*Verification & health*\n" + health)[:2000]},
        ]},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"*Checklist* ({s.checklist_done}/{len(s.checklist)})\n{checklist}"}},
        *sections(("*Root cause*\n" + (quote(s.root_cause or "", 12000) or "—")).splitlines(), most=5,
                  more=f"`rollbot report {s.incident}`"),
        *sections(("*Lessons learned*\n" + (quote(s.lessons or "", 12000) or "—")).splitlines(), most=5,
                  more=f"`rollbot report {s.incident}`"),
        *(sections([f"*Follow-ups* ({sum(f.status == 'done' for f in s.follow_ups)}/{len(s.follow_ups)} done; "
                    "owners are reminded by DM until they mark theirs done)", *follow_up_lines(s.follow_ups)],
                   most=3, more=f"`rollbot report {s.incident}`") if s.follow_ups else []),
        {"type": "context", "elements": [{"type": "mrkdwn",
                                          "text": f"Full report: `rollbot report {s.incident}` · resolved by {user(s.resolved_by or '')}"}]},
    ]
    return f"Post-incident summary for {s.incident}", blocks


def _timeline(s: Summary) -> str:
    def line(t: TimelineEntry) -> str:
        return f"`+{t.offset}` {t.what} — {user(t.actor) if t.actor.startswith('U') else t.actor}"

    entries = s.timeline
    if len(entries) <= TIMELINE_SHOWN:
        return "\n".join(map(line, entries))
    head, tail = entries[:6], entries[-(TIMELINE_SHOWN - 6):]
    left_out = len(entries) - len(head) - len(tail)
    return "\n".join([*map(line, head), f"_… {left_out} more entries in `rollbot report {s.incident}` …_",
                      *map(line, tail)])


def _by(actor: str) -> str:
    return "Rollbot" if actor == "rollbot" else user(actor)
