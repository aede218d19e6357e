"""Modals: deny reason, resolution (root cause, lessons, follow-ups with owners). The decision
matrix's are in ``bot.blocks.decide``."""

from __future__ import annotations

from typing import Any

from bot.blocks.text import plain
from handlers.follow_ups import MAX_PER_CATEGORY, TEXT_LIMIT
from handlers.model import FOLLOW_UP_CATEGORIES, Incident

View = dict[str, Any]


def _input(block_id: str, label: str, placeholder: str, *, multiline: bool = True, optional: bool = False) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "element": {"type": "plain_text_input", "action_id": "value", "multiline": multiline, "max_length": 2900,
                    "placeholder": {"type": "plain_text", "text": placeholder}},
    }


LONG_TEXT_LIMIT = 12000  # a root cause or lessons learned, in characters (rich text has no limit of its own)


def _rich_input(block_id: str, label: str, placeholder: str) -> dict[str, Any]:
    """A long free-text field: rich text, because Slack's plain-text inputs stop at 3,000
    characters and a root cause may well need more."""
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {"type": "rich_text_input", "action_id": "value",
                    "placeholder": {"type": "plain_text", "text": placeholder}},
    }


def deny_modal(incident: Incident) -> View:
    return {
        "type": "modal",
        "callback_id": "deny_modal",
        "private_metadata": f"{incident.id}:{incident.plan_hash}",
        "title": {"type": "plain_text", "text": plain(f"Deny {incident.ref}", 24)},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Back"},
        "blocks": [_input("reason", "Why deny this rollback?", "e.g. the bad deploy is already fixed forward")],
    }


FOLLOW_UP_ADD = "follow_up_add"  # the "Add another" button's action_id; its value is the category
_EXAMPLES = {"docs": "e.g. Step 3 of the runbook: purge the CDN cache after the rollback",
             "tests": "e.g. An end-to-end test of checkout with a stale catalog cache"}


def follow_up_block(category: str, row: int, part: str = "text") -> str:
    """The block id of one row's text (``part="text"``) or owner (``part="owner"``)."""
    return f"follow_up-{category}-{row}" + ("-owner" if part == "owner" else "")


def resolve_rows(metadata: object) -> tuple[int, dict[str, int]] | None:
    """``(incident id, rows per category)`` from the ``private_metadata`` the Resolve modal carries
    (``<id>:<docs rows>:<tests rows>``; a bare ``<id>`` has one row each); None for anything else."""
    parts = metadata.split(":") if isinstance(metadata, str) else []
    if not parts or not all(p.isascii() and p.isdigit() and len(p) < 12 for p in parts) or len(parts) not in (1, 3):
        return None
    counts = [int(p) for p in parts[1:]] or [1, 1]
    if not all(1 <= c <= MAX_PER_CATEGORY for c in counts):
        return None
    return int(parts[0]), dict(zip(FOLLOW_UP_CATEGORIES, counts, strict=True))


def _follow_up_rows(category: str, rows: int) -> list[dict[str, Any]]:
    label = FOLLOW_UP_CATEGORIES[category]
    blocks: list[dict[str, Any]] = []
    for row in range(rows):
        text = _input(follow_up_block(category, row), f"{label} {row + 1}" if rows > 1 else label, _EXAMPLES[category],
                      multiline=False, optional=True)
        text["element"]["max_length"] = TEXT_LIMIT
        blocks += [text, {
            "type": "input", "block_id": follow_up_block(category, row, "owner"), "optional": True,
            "label": {"type": "plain_text", "text": "Owner"},
            "element": {"type": "users_select", "action_id": "value",
                        "placeholder": {"type": "plain_text", "text": "Who does it?"}},
        }]
    if rows < MAX_PER_CATEGORY:
        blocks.append({"type": "actions", "block_id": f"follow_up_add-{category}", "elements": [
            {"type": "button", "action_id": FOLLOW_UP_ADD, "value": category,
             "text": {"type": "plain_text", "text": plain(f"Add another: {label.lower()}", 75)}}]})
    return blocks


def resolve_modal(incident: Incident, rows: dict[str, int] | None = None) -> View:
    """Root cause, lessons and the runbook's documentation updates: changes to the runbook or
    docs, and tests to add, each with an owner ("Add another" redraws it with one more row)."""
    counts = {category: (rows or {}).get(category, 1) for category in FOLLOW_UP_CATEGORIES}
    follow_ups = [block for category in FOLLOW_UP_CATEGORIES for block in _follow_up_rows(category, counts[category])]
    return {
        "type": "modal",
        "callback_id": "resolve_modal",
        "private_metadata": ":".join([str(incident.id), *(str(counts[c]) for c in FOLLOW_UP_CATEGORIES)]),
        "title": {"type": "plain_text", "text": plain(f"Resolve {incident.ref}", 24)},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": "The post-incident summary goes to the channel with what you write here."}},
            _rich_input("root_cause", "Root cause", "What broke, and why?"),
            _rich_input("lessons", "Lessons learned", "What will we change? (tests, alerts, runbook)"),
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                "*Documentation updates*: what must change in the runbook or docs, and which tests to add, "
                "each with an owner. Rollbot reminds each owner by DM until they mark it done.")}},
            *follow_ups,
        ],
    }
