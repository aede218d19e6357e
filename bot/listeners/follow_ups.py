"""The follow-ups' buttons: "Add another" in the Resolve modal, "Mark done" in the owner's DM."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.blocks.follow_ups import MARK_DONE
from bot.blocks.modals import FOLLOW_UP_ADD, resolve_modal, resolve_rows
from bot.blocks.text import user as mention
from bot.blocks.text import when
from bot.delivery import first_delivery
from bot.listeners.actions import NOT_OURS, _where
from handlers import follow_ups
from handlers.follow_ups import MAX_PER_CATEGORY
from handlers.model import FOLLOW_UP_CATEGORIES
from handlers.services import Refused, Services

log = logging.getLogger("rollbot.actions")


def _action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions")
    return actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}


def follow_up_id(body: dict[str, Any]) -> int | None:
    """The follow-up a "Mark done" button is for, from the value the bot wrote; None for anything else."""
    value = _action(body).get("value")
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 12 else None


def register(app: App, svc: Services) -> None:
    @app.action(FOLLOW_UP_ADD)
    def on_add(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """One more row of that category: the modal is redrawn (Slack keeps what was typed in
        blocks whose ids stay the same)."""
        ack()
        view: dict[str, Any] = body["view"] if isinstance(body.get("view"), dict) else {}
        rows, category = resolve_rows(view.get("private_metadata")), _action(body).get("value")
        incident = svc.store.get(rows[0]) if rows else None
        if rows is None or incident is None or category not in FOLLOW_UP_CATEGORIES:
            log.warning("an Add another click on a view Rollbot did not draw was ignored")
            return
        counts = {**rows[1], str(category): min(rows[1][str(category)] + 1, MAX_PER_CATEGORY)}
        client.views_update(view_id=view["id"], hash=view.get("hash"), view=resolve_modal(incident, counts))

    @app.action(MARK_DONE)
    def on_done(ack: Ack, body: dict[str, Any], context: dict[str, Any]) -> None:
        """Only the owner marks it done (once, audited); the DM is redrawn without its button."""
        ack()
        user, channel, _ = _where(body)
        message, container = (body[k] if isinstance(body.get(k), dict) else {} for k in ("message", "container"))
        ts = str(message.get("ts") or container.get("message_ts") or "")
        if not user or not first_delivery(svc.live, body, context):
            return
        wanted = follow_up_id(body)
        if wanted is None:
            svc.notifier.tell(channel, user, NOT_OURS)
            return
        try:
            follow_up, incident, changed = follow_ups.mark_done(svc, user, wanted)
        except Refused as refused:
            svc.notifier.tell(channel, user, f":no_entry: {refused.message}")
            return
        if channel and ts:
            svc.notifier.follow_up_done(incident, follow_up, channel, ts)
        if changed:
            follow_ups.refresh_summary(svc, incident.id)
        else:
            at = f" {when(follow_up.done_at)}" if follow_up.done_at else ""
            svc.notifier.tell(channel, user, f"This follow-up of {incident.ref} was already marked done by "
                                             f"{mention(follow_up.done_by or '')}{at}.")
