"""The post-incident summary as Block Kit."""

from __future__ import annotations

from typing import Any

from bot.blocks.follow_ups import follow_up_lines
from bot.blocks.text import chunks, plain, quote, sections, user
from handlers.summary import Summary, TimelineEntry

Block = dict[str, Any]
TIMELINE_SHOWN = 24  # entries; a longer timeline keeps its start and end and says how many are left out
TIMELINE_SECTIONS = 3  # sections the summary gives its timeline
TIMELINE_PART_SECTIONS = 10  # sections of one thread message of the full timeline (each up to 3,000 characters)
FIELD_TEXT = 2000  # Slack: each of a section's fields


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
        *sections(["*Timeline*", *_timeline(s)], most=TIMELINE_SECTIONS,
                  more=f"the full timeline is in the incident's thread and in `rollbot report {s.incident}`"),
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": _field("*Executed*\n" + executed, s.incident)},
            {"type": "mrkdwn", "text": _field("*Verification & health*\n" + health, s.incident)},
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


def _line(t: TimelineEntry) -> str:
    return f"`+{t.offset}` {t.what} — {user(t.actor) if t.actor.startswith('U') else t.actor}"


def timeline_shortened(s: Summary) -> bool:
    """Whether the summary shows only part of the timeline (then the thread gets all of it)."""
    lines = [_line(t) for t in s.timeline]
    return len(lines) > TIMELINE_SHOWN or len(chunks(["*Timeline*", *lines])) > TIMELINE_SECTIONS


def _timeline(s: Summary) -> list[str]:
    lines = [_line(t) for t in s.timeline]
    if not timeline_shortened(s):
        return lines
    head, tail = lines[:6], lines[-(TIMELINE_SHOWN - 6):]
    left_out = len(lines) - len(head) - len(tail)
    return [*head, f"_… {left_out} more entries: the full timeline is in the incident's thread and in "
                   f"`rollbot report {s.incident}` …_", *tail]


def timeline_parts(s: Summary) -> list[tuple[str, list[Block]]]:
    """The whole timeline as thread messages, when the summary shows only part of it: every entry,
    in order, in as many messages as Slack's limits need (none when the summary shows it all)."""
    if not timeline_shortened(s):
        return []
    texts = chunks([_line(t) for t in s.timeline])
    parts = [texts[n:n + TIMELINE_PART_SECTIONS] for n in range(0, len(texts), TIMELINE_PART_SECTIONS)]
    out = []
    for number, part in enumerate(parts, start=1):
        title = f"*Full timeline of {s.incident}* ({len(s.timeline)} entries)"
        if len(parts) > 1:
            title += f", part {number} of {len(parts)}"
        blocks: list[Block] = [{"type": "section", "text": {"type": "mrkdwn", "text": title}},
                               *({"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in part)]
        out.append((f"Full timeline of {s.incident}, part {number} of {len(parts)}", blocks))
    return out


def _field(text: str, incident: str) -> str:
    """A section field (2,000 characters at most): lines that do not fit are counted and pointed to."""
    lines = text.splitlines()
    kept = lines
    while len("\n".join(kept)) > FIELD_TEXT or (kept is not lines and len(
            "\n".join([*kept, _more(len(lines) - len(kept), incident)])) > FIELD_TEXT):
        kept = kept[:-1]
    if kept is lines:
        return text
    return "\n".join([*kept, _more(len(lines) - len(kept), incident)])


def _more(count: int, incident: str) -> str:
    return f"_…and {count} more: `rollbot report {incident}`_"


def _by(actor: str) -> str:
    return "Rollbot" if actor == "rollbot" else user(actor)
