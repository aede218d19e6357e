"""App Home: what is open now, the last rollback, recent history, and how to start."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.blocks.status import history_blocks, status_blocks
from handlers.drills import DrillSchedule
from handlers.durations import format_duration
from handlers.model import Incident
from handlers.runbook import DECISION_MATRIX

View = dict[str, Any]


def home_view(open_incidents: list[Incident], last: Incident | None, recent: list[Incident], now: datetime,
              drills: DrillSchedule | None = None) -> View:
    matrix = "\n".join(f"• {row.label} → {' + '.join(row.kinds)} · {format_duration(row.target)} · risk {row.risk}"
                       for row in DECISION_MATRIX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Rollbot"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            "Guided, approved, audited rollbacks. Start one with `/rollback code <env> <reason>`; "
            "`/rollback decide` helps pick the kind.").replace("<env> <reason>", "&lt;env&gt; &lt;reason&gt;")}},
        {"type": "divider"},
        *status_blocks(open_incidents, last, now, drills),
        {"type": "divider"},
        *history_blocks(recent),
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Decision matrix*\n" + matrix}},
    ]
    return {"type": "home", "blocks": blocks[:100]}
