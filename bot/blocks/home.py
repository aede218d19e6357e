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
HOME_RECENT = 10  # incidents the Home tab lists under "Recent rollbacks"
# Sections each list may take: with the fixed blocks (11) the view stays under Slack's 100 blocks
# however many incidents there are; what does not fit is counted, and the tab says where it is.
OPEN_SECTIONS = 40
HISTORY_SECTIONS = 40


def home_view(open_incidents: list[Incident], last: Incident | None, recent: list[Incident], now: datetime,
              drills: DrillSchedule | None = None, total: int | None = None) -> View:
    """``total``: how many incidents there are in all, so the history can count those it leaves out."""
    matrix = "\n".join(f"• {row.label} → {' + '.join(row.kinds)} · {format_duration(row.target)} · risk {row.risk}"
                       for row in DECISION_MATRIX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Rollbot"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            "Guided, approved, audited rollbacks. Start one with `/rollback code <env> <reason>`; "
            "`/rollback decide` helps pick the kind.").replace("<env> <reason>", "&lt;env&gt; &lt;reason&gt;")}},
        {"type": "divider"},
        *status_blocks(open_incidents, last, now, drills, most=OPEN_SECTIONS),
        {"type": "divider"},
        *history_blocks(recent, total, most=HISTORY_SECTIONS),
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Decision matrix*\n" + matrix}},
    ]
    return {"type": "home", "blocks": blocks}
