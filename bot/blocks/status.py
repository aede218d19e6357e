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
    return f"*{i.ref}* {quote(i.kind, 30)} rollback on *{i.env}* · {STATUS_LINE[i.status]} · by {user(i.requester)} {when(i.created_at)}{reason}"


def status_blocks(open_incidents: list[Incident], last: Incident | None, now: datetime) -> list[Block]:
    head = "*Open rollbacks*\n" + ("\n".join(_line(i) for i in open_incidents) if open_incidents else "_None. All quiet._")
    last_line = "*Last rollback:* " + (
        f"{last.ref} on {last.env}, {when(last.rolled_back_at)} ({last.rolled_back_at:%Y-%m-%d})"
        if last and last.rolled_back_at else "never"
    )
    return [*sections(head.splitlines(), most=20, more="App Home lists them too"),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": last_line}]}]


def history_blocks(incidents: list[Incident]) -> list[Block]:
    text = "*Recent rollbacks*\n" + ("\n".join(_line(i) for i in incidents) if incidents else "_No rollbacks yet._")
    return sections(text.splitlines(), most=20, more="`rollbot report RB-N` for any of them")
