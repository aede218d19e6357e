"""Modals: deny reason, resolution (root cause + lessons). The decision matrix's are in ``bot.blocks.decide``."""

from __future__ import annotations

from typing import Any

from bot.blocks.text import plain
from handlers.model import Incident

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


def resolve_modal(incident: Incident) -> View:
    return {
        "type": "modal",
        "callback_id": "resolve_modal",
        "private_metadata": str(incident.id),
        "title": {"type": "plain_text", "text": plain(f"Resolve {incident.ref}", 24)},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": "The post-incident summary goes to the channel with what you write here."}},
            _input("root_cause", "Root cause", "What broke, and why?"),
            _input("lessons", "Lessons learned", "What will we change? (tests, alerts, runbook)"),
        ],
    }
