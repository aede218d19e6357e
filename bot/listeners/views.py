"""Modal submissions: deny reason, resolution (root cause, lessons, follow-ups with owners)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.blocks.modals import LONG_TEXT_LIMIT, follow_up_block, resolve_rows
from bot.listeners.rich_text import rich_text_to_text
from handlers import approvals, follow_ups, resolution
from handlers.commands import clean
from handlers.model import FOLLOW_UP_CATEGORIES, NewFollowUp
from handlers.services import Refused, Services


def _value(view: dict[str, Any], block_id: str) -> str:
    """A text input's value, plain or rich text, without control characters (Postgres refuses
    NUL). A plain one is still read: a modal opened before an upgrade has plain inputs."""
    found: Any = view
    for key in ("state", "values", block_id, "value"):
        found = found.get(key) if isinstance(found, dict) else None
    if isinstance(found, dict) and "rich_text_value" in found:
        return rich_text_to_text(found["rich_text_value"])
    return clean(str(found.get("value") or "")) if isinstance(found, dict) else ""


def _selected_user(view: dict[str, Any], block_id: str) -> str:
    """A users_select's pick ("" when none)."""
    found: Any = view
    for key in ("state", "values", block_id, "value"):
        found = found.get(key) if isinstance(found, dict) else None
    picked = found.get("selected_user") if isinstance(found, dict) else None
    return picked if isinstance(picked, str) else ""


def follow_up_drafts(view: dict[str, Any]) -> tuple[list[NewFollowUp], dict[str, str]]:
    """The Resolve modal's follow-up rows: what to store, or the errors per block (a text with no
    owner, an owner with no text, ...). Empty rows are no follow-up."""
    rows = resolve_rows(view.get("private_metadata"))
    counts = rows[1] if rows else {category: 1 for category in FOLLOW_UP_CATEGORIES}
    drafts: list[follow_ups.Draft] = []
    errors: dict[str, str] = {}
    for category, count in counts.items():
        for row in range(count):
            draft = follow_ups.Draft(category, _value(view, follow_up_block(category, row)),
                                     _selected_user(view, follow_up_block(category, row, "owner")))
            problem = follow_ups.check(draft)
            if problem and problem.text:
                errors[follow_up_block(category, row)] = problem.text
            if problem and problem.owner:
                errors[follow_up_block(category, row, "owner")] = problem.owner
            drafts.append(draft)
    return ([] if errors else follow_ups.accepted(drafts)), errors


def _incident_id(view: dict[str, Any]) -> int | None:
    """The incident a modal was opened for, from the ``private_metadata`` the bot wrote."""
    metadata = view.get("private_metadata")
    head = metadata.partition(":")[0] if isinstance(metadata, str) else ""
    return int(head) if head.isascii() and head.isdigit() and len(head) < 12 else None


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    return str(user.get("id") or "") if isinstance(user, dict) else ""


NOT_OURS = "This form is not one Rollbot opened; nothing was done."


def register(app: App, svc: Services) -> None:
    @app.view("deny_modal")
    def on_deny(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user, incident_id = _user(body), _incident_id(view)
        if not user or incident_id is None:
            ack(response_action="errors", errors={"reason": NOT_OURS})
            return
        reason = _value(view, "reason").strip()
        if not reason:
            ack(response_action="errors", errors={"reason": "Say why, so the requester knows what to do next."})
            return
        ack()
        try:
            approvals.deny(svc, user, incident_id, reason)
        except Refused as refused:
            incident = svc.store.get(incident_id)
            if incident and incident.channel:
                svc.notifier.tell(incident.channel, user, f":no_entry: {refused.message}")

    @app.view("resolve_modal")
    def on_resolve(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user, incident_id = _user(body), _incident_id(view)
        if not user or incident_id is None or resolve_rows(view.get("private_metadata")) is None:
            ack(response_action="errors", errors={"root_cause": NOT_OURS})
            return
        root_cause, lessons = _value(view, "root_cause"), _value(view, "lessons")
        items, errors = follow_up_drafts(view)
        for block_id, text in (("root_cause", root_cause), ("lessons", lessons)):
            if len(text) > LONG_TEXT_LIMIT:
                errors[block_id] = f"{len(text):,} characters; at most {LONG_TEXT_LIMIT:,} (attach the rest to the post-mortem)."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        try:  # only what the database can tell before the ack; the role check follows it
            resolution.resolvable(svc, user, incident_id, check_roles=False)
        except Refused as refused:
            ack(response_action="errors", errors={"root_cause": refused.message[:150]})
            return
        ack()
        try:
            resolution.resolve(svc, user, incident_id, root_cause, lessons, items)
        except Refused as refused:
            incident = svc.store.get(incident_id)
            if incident and incident.channel:
                svc.notifier.tell(incident.channel, user, f":no_entry: {refused.message}")
