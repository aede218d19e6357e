"""Buttons and checkboxes: Approve, Deny, Resolve, the pre-rollback checklist."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.ack_first import After, in_request_thread
from bot.blocks.modals import deny_modal, resolve_modal
from bot.delivery import first_delivery
from bot.listeners.refusals import refusals_told
from handlers import approvals, resolution
from handlers.model import Status
from handlers.runbook import checklist_groups
from handlers.services import Refused, Services

log = logging.getLogger("rollbot.actions")


def _where(body: dict[str, Any]) -> tuple[str, str, str | None]:
    def field(name: str) -> dict[str, Any]:
        value = body.get(name)
        return value if isinstance(value, dict) else {}

    channel = field("channel").get("id") or field("container").get("channel_id") or ""
    message = field("message")
    return str(field("user").get("id") or ""), str(channel), message.get("thread_ts") or message.get("ts")


NOT_OURS = ":no_entry: That button is not one Rollbot drew (its value is missing or malformed); nothing was done."


def _incident_ref(body: dict[str, Any]) -> tuple[int, str] | None:
    """``(incident id, plan hash)`` from the clicked button's value as the bot wrote it
    (``<id>:<hash>``, or ``<id>`` for Resolve); None for anything else."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    value = action.get("value")
    if not isinstance(value, str):
        return None
    incident, _, plan_hash = value.partition(":")
    if not (incident.isascii() and incident.isdigit() and len(incident) < 12) or len(plan_hash) > 64:
        return None
    return int(incident), plan_hash


def _checklist_block(block_id: str) -> tuple[str, int] | None:
    """``checklist-<group>-<incident id>`` -> (group, incident id)."""
    parts = block_id.split("-")
    if len(parts) == 3 and parts[0] == "checklist" and parts[2].isdigit():
        return parts[1], int(parts[2])
    return None


def register(app: App, svc: Services) -> None:
    @app.action("approve")
    @in_request_thread
    def on_approve(ack: Ack, body: dict[str, Any], context: dict[str, Any]) -> After:
        """The approval is recorded before the ack (one short transaction), so a web process
        that dies right after acknowledging loses nothing: the deciding approval has already
        queued the execution for the worker, and every approval its ``announce`` job (the
        redraw), in the same transaction."""
        user, channel, thread = _where(body)
        if not user or not first_delivery(svc.live, body, context):
            ack()
            return None
        ref = _incident_ref(body)
        if ref is None:
            ack()
            return lambda: svc.notifier.tell(channel, user, NOT_OURS)
        incident_id, plan_hash = ref
        try:
            approvals.record(svc, user, incident_id, plan_hash, announce_in=channel)
        except Refused as refused:
            ack()
            note = f":no_entry: Your approval does not count: {refused.message}"
            return lambda: svc.notifier.tell(channel, user, note)
        ack()
        return None

    @app.action("deny")
    def on_deny(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """The modal opens at once (the trigger lives 3 s); who may deny is checked on submit."""
        ack()
        user, channel, _ = _where(body)
        ref = _incident_ref(body)
        if ref is None:
            svc.notifier.tell(channel, user, NOT_OURS)
            return
        incident_id = ref[0]
        incident = svc.store.get(incident_id)
        if incident is None or incident.status is not Status.PENDING:
            state = incident.status.value if incident else "gone"
            svc.notifier.tell(channel, user, f":no_entry: RB-{incident_id} is {state}; there is nothing to deny.")
            return
        client.views_open(trigger_id=body["trigger_id"], view=deny_modal(incident))

    @app.action("resolve")
    def on_resolve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user, channel, _ = _where(body)
        ref = _incident_ref(body)
        if ref is None:
            svc.notifier.tell(channel, user, NOT_OURS)
            return
        refusals_told(lambda text: svc.notifier.tell(channel, user, text), lambda: client.views_open(
            trigger_id=body["trigger_id"], view=resolve_modal(resolution.resolvable(svc, user, ref[0], check_roles=False))))

    @app.action("checklist")
    def on_checklist(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user, channel, _ = _where(body)
        action = body["actions"][0]
        where = _checklist_block(str(action.get("block_id", "")))
        incident = svc.store.get(where[1]) if where else None
        if where is None or incident is None:
            return
        group, incident_id = where
        if svc.roles.resolve_refusal(user, incident):
            svc.audit(incident_id, user, "checklist", "refused", reason="not a requester or approver",
                      code="not_allowed")
            svc.notifier.tell(channel, user, ":no_entry: Only requesters and approvers of this environment tick the checklist.")
            svc.redraw_root(incident_id)  # redraw: undo the click on their screen
            return
        selected = {o["value"] for o in action.get("selected_options") or []}
        in_block = {key for name, items in checklist_groups(incident.checklist) if name == group for key, _, _ in items}
        updated = incident
        for key, done in incident.checklist.items():
            if key in in_block and (key in selected) != done:
                updated = svc.store.set_checklist(incident_id, key, key in selected) or updated
                svc.audit(incident_id, user, "checklist", "ok", item=key, checked=key in selected)
        svc.redraw_root(incident_id)
