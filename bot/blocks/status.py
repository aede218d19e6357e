"""`/rollback status` and `/rollback history` replies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.blocks.incident import STATUS_LINE
from bot.blocks.text import escape, quote, sections, user, when
from handlers.drills import DrillSchedule
from handlers.model import Incident

Block = dict[str, Any]


def _line(i: Incident) -> str:
    reason = f" — {quote(i.reason, 120)}" if i.reason else ""
    return f"*{i.ref}* {'drill: ' if i.drill else ''}{quote(i.kind, 30)} rollback on *{i.env}* · {STATUS_LINE[i.status]} · by {user(i.requester)} {when(i.created_at)}{reason}"


SEE_ALL = "`/rollback history 50` lists the newest 50, `rollbot report RB-N` shows any one"


def status_blocks(open_incidents: list[Incident], last: Incident | None, now: datetime,
                  drills: DrillSchedule | None = None, *, most: int = 20) -> list[Block]:
    """Open rollbacks in at most ``most`` sections (those that do not fit are counted, and the
    reply says where to see them), then the last rollback, the last drill and what is due."""
    head = "*Open rollbacks*\n" + ("\n".join(_line(i) for i in open_incidents) if open_incidents else "_None. All quiet._")
    lines = [last_rollback_line("Last rollback", last)]
    if drills is not None:
        lines += [last_rollback_line("Last drill", drills.last_drill), *_rhythm(drills, now)]
    return [*sections(head.splitlines(), most=most, more=SEE_ALL),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": line} for line in lines]}]


def _rhythm(drills: DrillSchedule, now: datetime) -> list[str]:
    """Next drill and next review of the procedure, as the runbook asks for them."""
    if drills.next_drill is None:
        drill = "*Next drill:* due now (no drill on record; `/rollback drill <type> <env>`)"
    else:
        late = " :warning: overdue" if drills.drill_overdue(now) else ""
        drill = f"*Next drill:* {when(drills.next_drill)} ({drills.next_drill:%Y-%m-%d}){late}"
    link = f" · <{escape(drills.procedure_url)}|the procedure>" if drills.procedure_url else ""
    if drills.next_review is None:
        review = f"*Next review:* unknown (set `procedure_reviewed` under `[drills]`){link}"
    else:
        late = " :warning: overdue" if drills.review_overdue(now.date()) else ""
        review = f"*Next review:* {drills.next_review:%Y-%m-%d}{late}{link}"
    return [drill, review]


def last_rollback_line(label: str, last: Incident | None) -> str:
    """"*Last rollback:* RB-4 on prod, <date>" (drills are counted apart from real rollbacks)."""
    if last is None or last.rolled_back_at is None:
        return f"*{label}:* never"
    return f"*{label}:* {last.ref} on {last.env}, {when(last.rolled_back_at)} ({last.rolled_back_at:%Y-%m-%d})"


def history_blocks(incidents: list[Incident], total: int | None = None, *, most: int = 20) -> list[Block]:
    """The newest incidents in at most ``most`` sections. With ``total`` (how many there are in
    all), the older ones not listed are counted and the reply says where to see them."""
    title = "*Recent rollbacks*"
    older = (total or 0) - len(incidents)
    if older > 0:
        title += f" (the newest {len(incidents)} of {total})"
    lines = [title, *(_line(i) for i in incidents)] if incidents else [title, "_No rollbacks yet._"]
    if older > 0:
        lines.append(f"_…and {older} older: {SEE_ALL}_")
    return sections(lines, most=most, more="`rollbot report RB-N` for any of them")
