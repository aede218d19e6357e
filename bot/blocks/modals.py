"""Modals: deny reason, resolution (root cause + lessons), decision matrix."""

from __future__ import annotations

from typing import Any

from bot.blocks.text import plain
from handlers.durations import format_duration
from handlers.model import Incident
from handlers.runbook import DECISION_MATRIX

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


def decide_modal(issue: str | None = None) -> View:
    """The runbook's decision matrix as a modal: pick the issue type, get the rollback to run."""
    options = [{"text": {"type": "plain_text", "text": plain(row.label, 75)}, "value": row.issue}
               for row in DECISION_MATRIX]
    select: dict[str, Any] = {"type": "static_select", "action_id": "decide_issue", "options": options,
                              "placeholder": {"type": "plain_text", "text": "What kind of issue is it?"}}
    chosen = next((row for row in DECISION_MATRIX if row.issue == issue), None)
    if chosen is not None:
        select["initial_option"] = next(o for o in options if o["value"] == chosen.issue)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": "issue", "text": {"type": "mrkdwn", "text": "*Issue type*"},
         "accessory": select},
    ]
    if chosen is None:
        lines = [f"• {row.label} → {' + '.join(row.kinds)} · {format_duration(row.target)} · risk {row.risk}"
                 for row in DECISION_MATRIX]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    else:
        commands = "\n".join(_COMMANDS[kind] for kind in chosen.kinds)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"*Recommended:* {' + '.join(chosen.kinds)} rollback · target {format_duration(chosen.target)} · "
            f"risk {chosen.risk} (severity {chosen.severity})\n```{commands}```")}})
    return {
        "type": "modal",
        "callback_id": "decide_modal",
        "title": {"type": "plain_text", "text": "Decision matrix"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": blocks,
    }


_COMMANDS = {
    "code": "/rollback code <env> [reason]",
    "database": "/rollback db <env> <migration> [reason]",
    "env": "/rollback env <env> <KEY> [reason]",
    "flag": "/rollback flag <env> <flag-key> [reason]",
}
