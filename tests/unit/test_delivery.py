"""Once per delivery: which key a click or an event is de-duplicated under, and who asks Redis."""

from __future__ import annotations

from bot.delivery import FIRST_DELIVERY, delivery_key, first_delivery
from bot.edge import Admitted
from bot.wsgi import _bolt_request


class Live:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def first_delivery(self, key: str, ttl_seconds: int = 600) -> bool:
        self.asked.append((key, ttl_seconds))
        return len(self.asked) == 1


CLICK = {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "approve", "action_ts": "17.5"}]}


def test_keys_for_a_click_and_an_event_and_none_for_the_rest() -> None:
    assert delivery_key(CLICK) == ("action:U1:approve:17.5", 600)
    assert delivery_key({"type": "event_callback", "event_id": "Ev1", "event": {}}) == ("event:Ev1", 3600)
    assert delivery_key({"type": "event_callback", "event": {}}) is None
    assert delivery_key({"type": "block_actions", "user": {"id": "U1"}, "actions": []}) is None
    assert delivery_key({"type": "block_actions", "actions": [{"action_id": "x"}]}) is None
    assert delivery_key({"command": "/rollback", "text": "help"}) is None  # no trigger_id: nothing to claim
    assert delivery_key({"command": "/rollback", "text": "code prod", "trigger_id": "13345.98"}) == (
        "command:13345.98", 600)


def test_the_gates_answer_is_used_and_redis_is_asked_only_without_one() -> None:
    live = Live()
    assert first_delivery(live, CLICK, {FIRST_DELIVERY: False}) is False  # type: ignore[arg-type]
    assert first_delivery(live, CLICK, {FIRST_DELIVERY: True}) is True  # type: ignore[arg-type]
    assert live.asked == []  # over HTTP: no second round trip
    assert first_delivery(live, CLICK, {}) is True  # type: ignore[arg-type]  # Socket Mode: the listener asks
    assert first_delivery(live, CLICK) is False  # type: ignore[arg-type]
    assert live.asked == [("action:U1:approve:17.5", 600)] * 2
    assert first_delivery(live, {"command": "/rollback"}) is True  # type: ignore[arg-type]  # nothing to claim


def test_the_gates_answer_reaches_the_listeners_context() -> None:
    environ = {"REQUEST_METHOD": "POST", "QUERY_STRING": "", "CONTENT_TYPE": "application/x-www-form-urlencoded"}
    told = _bolt_request(environ, b"payload=...", Admitted(CLICK, False))
    assert told.context[FIRST_DELIVERY] is False and told.body == CLICK
    assert FIRST_DELIVERY not in _bolt_request(environ, b"payload=...", Admitted(CLICK)).context
