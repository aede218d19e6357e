"""Modal submissions: deny reason, resolution (root cause + lessons)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from handlers import approvals, resolution
from handlers.commands import clean
from handlers.services import Refused, Services


def _value(view: dict[str, Any], block_id: str) -> str:
    """A text input's value, without control characters (Postgres refuses NUL)."""
    found: Any = view
    for key in ("state", "values", block_id, "value"):
        found = found.get(key) if isinstance(found, dict) else None
    return clean(str(found.get("value") or "")) if isinstance(found, dict) else ""


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
        if not user or incident_id is None:
            ack(response_action="errors", errors={"root_cause": NOT_OURS})
            return
        root_cause, lessons = _value(view, "root_cause"), _value(view, "lessons")
        try:  # only what the database can tell before the ack; the role check follows it
            resolution.resolvable(svc, user, incident_id, check_roles=False)
        except Refused as refused:
            ack(response_action="errors", errors={"root_cause": refused.message[:150]})
            return
        ack()
        try:
            resolution.resolve(svc, user, incident_id, root_cause, lessons)
        except Refused as refused:
            incident = svc.store.get(incident_id)
            if incident and incident.channel:
                svc.notifier.tell(incident.channel, user, f":no_entry: {refused.message}")
