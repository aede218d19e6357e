"""Modal submissions: deny reason, resolution (root cause + lessons)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from handlers import approvals, resolution
from handlers.commands import clean
from handlers.services import Refused, Services


def _value(view: dict[str, Any], block_id: str) -> str:
    """A text input's value, without control characters (Postgres refuses NUL)."""
    block = (view.get("state") or {}).get("values", {}).get(block_id) or {}
    return clean(str((block.get("value") or {}).get("value") or ""))


def register(app: App, svc: Services) -> None:
    @app.view("deny_modal")
    def on_deny(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body["user"]["id"]
        incident_id = int(view["private_metadata"].partition(":")[0])
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
        user = body["user"]["id"]
        incident_id = int(view["private_metadata"])
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
