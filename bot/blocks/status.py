"""`/rollback status` and `/rollback history` replies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.blocks.incident import STATUS_LINE
from bot.blocks.text import quote, sections, user, when
from handlers.model import Incident

Block = dict[str, Any]


def _line(i: Incident) -> str:
    reason = f" — {quote(i.reason, 120)}" if i.reason else ""
    return f"*{i.ref}* {'drill: ' if i.drill else ''}{quote(i.kind, 30)} rollback on *{i.env}* · {STATUS_LINE[i.status]} · by {user(i.requester)} {when(i.created_at)}{reason}"


def status_blocks(open_incidents: list[Incident], last: Incident | None, now: datetime,
                  last_drill: Incident | None = None) -> list[Block]:
    head = "*Open rollbacks*\n" + ("\n".join(_line(i) for i in open_incidents) if open_incidents else "_None. All quiet._")
    return [*sections(head.splitlines(), most=20, more="App Home lists them too"),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": last_rollback_line("Last rollback", last)},
                                             {"type": "mrkdwn", "text": last_rollback_line("Last drill", last_drill)}]}]


def last_rollback_line(label: str, last: Incident | None) -> str:
    """"*Last rollback:* RB-4 on prod, <date>" (drills are counted apart from real rollbacks)."""
    if last is None or last.rolled_back_at is None:
        return f"*{label}:* never"
    return f"*{label}:* {last.ref} on {last.env}, {when(last.rolled_back_at)} ({last.rolled_back_at:%Y-%m-%d})"


def history_blocks(incidents: list[Incident]) -> list[Block]:
    text = "*Recent rollbacks*\n" + ("\n".join(_line(i) for i in incidents) if incidents else "_No rollbacks yet._")
    return sections(text.splitlines(), most=20, more="`rollbot report RB-N` for any of them")
