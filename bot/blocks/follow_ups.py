"""Follow-ups as Block Kit: the owner's DM reminder (with "Mark done"), the same DM once done,
and the lines the post-incident summary lists them with."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.blocks.text import quote, user, when
from handlers.durations import format_duration
from handlers.follow_ups import TEXT_LIMIT
from handlers.model import FOLLOW_UP_CATEGORIES, FollowUp, Incident
from handlers.summary import FollowUpItem

Block = dict[str, Any]
MARK_DONE = "follow_up_done"  # the button's action_id; its value is the follow-up's id


def _about(incident: Incident, follow_up: FollowUp, summary_link: str | None) -> list[Block]:
    label = FOLLOW_UP_CATEGORIES.get(follow_up.category, follow_up.category)
    where = f"<{summary_link}|{incident.ref} post-incident summary>" if summary_link else incident.ref
    resolver = f" · assigned by {user(incident.resolution.resolved_by)}" if incident.resolution else ""
    return [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f":memo: *Follow-up of {incident.ref}* · {label}\n{quote(follow_up.text, 2800)}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{where} · {incident.kind} rollback on "
                                          f"{quote(incident.env, 50)}{resolver}"}]},
    ]


def follow_up_blocks(incident: Incident, follow_up: FollowUp, round_: int, every: timedelta,
                     summary_link: str | None) -> tuple[str, list[Block]]:
    again = "" if round_ == 1 else f"Reminder {round_} · "
    blocks = [
        *_about(incident, follow_up, summary_link),
        {"type": "actions", "block_id": f"follow_up-{follow_up.id}", "elements": [
            {"type": "button", "action_id": MARK_DONE, "style": "primary", "value": str(follow_up.id),
             "text": {"type": "plain_text", "text": "Mark done"}},
        ]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"{again}You own this follow-up: Rollbot reminds you every {format_duration(every)} until you mark it done.")}]},
    ]
    return f"{again}Follow-up of {incident.ref} for you: {quote(follow_up.text, 200)}", blocks


def follow_up_done_blocks(incident: Incident, follow_up: FollowUp, summary_link: str | None) -> tuple[str, list[Block]]:
    done = f":white_check_mark: Done by {user(follow_up.done_by or '')}" + (
        f" {when(follow_up.done_at)}" if follow_up.done_at else "") + ". No more reminders."
    blocks = [*_about(incident, follow_up, summary_link),
              {"type": "context", "elements": [{"type": "mrkdwn", "text": done}]}]
    return f"Follow-up of {incident.ref} done", blocks


def follow_up_lines(items: list[FollowUpItem]) -> list[str]:
    """One line per follow-up for the summary: category, text, owner, status."""
    def status(item: FollowUpItem) -> str:
        if item.status != "done":
            return "open"
        return f":white_check_mark: done by {user(item.done_by or '')}" + (f" {when(item.done_at)}" if item.done_at else "")

    return [f"• *{item.label}*: {quote(item.text, 5 * TEXT_LIMIT)} — {user(item.owner)} · {status(item)}" for item in items]
