"""Once per delivery: the key under which a slash command, a click or an event is acted on once,
whatever Slack re-sends (an event's retries carry a new signature; Socket Mode may deliver an
envelope again).

Over HTTP the edge's gate claims the key in the same Redis round trip as its replay check and
hands the answer to the listener in Bolt's context (``FIRST_DELIVERY``); in Socket Mode, with no
gate, the listener claims it itself. Either way Redis is a fast filter, never the only guard:
the acting paths keep their own (an approval counts once per approver in Postgres).
"""

from __future__ import annotations

from typing import Any

from handlers.ports import LiveState

FIRST_DELIVERY = "rollbot_first_delivery"  # Bolt context key: the gate's answer, when it asked
ACTION_TTL = 600
EVENT_TTL = 3600  # Slack retries an event for up to about an hour


def delivery_key(body: dict[str, Any]) -> tuple[str, int] | None:
    """``(key, seconds to remember it)`` for a slash command (its ``trigger_id``, one per
    invocation), a button click or an event; None for anything else."""
    if isinstance(body.get("command"), str):
        trigger = body.get("trigger_id")
        return (f"command:{trigger}", ACTION_TTL) if isinstance(trigger, str) and trigger else None
    kind = body.get("type")
    if kind == "block_actions":
        actions, user = body.get("actions"), body.get("user")
        action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
        user_id = user.get("id") if isinstance(user, dict) else None
        if not user_id or not action:
            return None
        return f"action:{user_id}:{action.get('action_id')}:{action.get('action_ts')}", ACTION_TTL
    if kind == "event_callback" and isinstance(body.get("event_id"), str):
        return f"event:{body['event_id']}", EVENT_TTL
    return None


def first_delivery(live: LiveState, body: dict[str, Any], context: dict[str, Any] | None = None) -> bool:
    """True the first time this click or event arrives (and for anything without a key)."""
    known = (context or {}).get(FIRST_DELIVERY)
    if isinstance(known, bool):
        return known
    key = delivery_key(body)
    return True if key is None else live.first_delivery(*key)
