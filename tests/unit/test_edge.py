"""The gate in front of Bolt: signature first (401 before any parsing), then shape (400), then
replays (acted on once)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bot.edge import Admitted, Refusal, SlackGate, shape, verify

SECRET = "s3cret"
NOW = 1_800_000_000


def _sign(body: bytes, ts: str, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("timestamp", ["", "abc", "1.5", "1e3", "-5", " 12", "1" * 13, "٣٤٥"])
def test_a_malformed_timestamp_is_refused_before_the_signature_is_computed(timestamp: str) -> None:
    refusal = verify(SECRET, timestamp, "v0=00", b"{", NOW)
    assert refusal is not None and refusal.status == 401 and "Timestamp" in refusal.reason


@pytest.mark.parametrize("offset, ok", [(0, True), (299, True), (-299, True), (301, False), (-301, False)])
def test_the_five_minute_window(offset: int, ok: bool) -> None:
    ts = str(NOW + offset)
    assert (verify(SECRET, ts, _sign(b"x", ts), b"x", NOW) is None) is ok


@pytest.mark.parametrize("signature", ["", "v1=abc", "v0=" + "0" * 64, _sign(b"x", str(NOW), "other"), "v0=ü"])
def test_wrong_signatures_are_401(signature: str) -> None:
    refusal = verify(SECRET, str(NOW), signature, b"x", NOW)
    assert refusal is not None and refusal.status == 401


def test_the_signature_covers_every_byte() -> None:
    ts = str(NOW)
    good = _sign(b"text=code prod", ts)
    assert verify(SECRET, ts, good, b"text=code prod", NOW) is None
    assert verify(SECRET, ts, good, b"text=code prod ", NOW) is not None


@pytest.mark.parametrize("content_type, body, fine", [
    ("application/x-www-form-urlencoded", b"command=%2Frollback&user_id=U1&text=", True),
    ("application/x-www-form-urlencoded; charset=utf-8", b"payload=%7B%22type%22%3A%20%22block_actions%22%2C%20%22user%22%3A%20%7B%22id%22%3A%20%22U1%22%7D%2C%20%22actions%22%3A%20%5B%7B%22action_id%22%3A%20%22approve%22%7D%5D%7D", True),
    ("application/x-www-form-urlencoded; charset=utf-8", b"payload=%7B%22type%22%3A%22block_actions%22%7D", False),
    ("application/json", b'{"type": "block_actions", "user": {"id": "U1"}, "actions": null}', False),
    ("application/json", b'{"type": "block_actions", "user": {"id": "U1"}, "actions": [{}]}', False),
    ("application/json", b'{"type": "block_actions", "user": "U1", "actions": [{"action_id": "a"}]}', False),
    ("application/json", b'{"type": "view_submission", "user": {"id": "U1"}, "view": []}', False),
    ("application/json", b'{"type": "event_callback", "event": {"type": "app_home_opened"}}', True),
    ("application/json", b'{"type": "event_callback"}', False),
    ("application/json", b'{"type": "something_new"}', True),
    ("application/json", b'{"type": 3}', False),
    ("application/json", b"\xff", False),
    ("application/x-www-form-urlencoded", b"payload=null", False),
    ("application/x-www-form-urlencoded", b"a=1&&&=", False),
    ("application/x-www-form-urlencoded", b"", False),
    ("", b"{}", False),
    ("multipart/form-data", b"--x", False),
])
def test_only_what_slack_sends_passes(content_type: str, body: bytes, fine: bool) -> None:
    refusal = shape(content_type, body)
    assert (not isinstance(refusal, Refusal)) is fine
    if isinstance(refusal, Refusal):
        assert refusal.status == 400 and refusal.reason
    else:
        assert isinstance(refusal, dict) and refusal  # what Bolt will read


def test_the_gate_lets_a_signed_request_act_once() -> None:
    seen: set[str] = set()

    def admit(key: str, delivery: tuple[str, int] | None) -> tuple[bool, bool | None]:
        known = key in seen
        seen.add(key)
        return known, None if delivery is None else delivery[0] not in seen

    gate = SlackGate(SECRET, admit, clock=lambda: NOW)
    body, ts = b'{"type": "event_callback", "event": {"type": "app_home_opened"}}', str(NOW)
    environ = {"HTTP_X_SLACK_REQUEST_TIMESTAMP": ts, "HTTP_X_SLACK_SIGNATURE": _sign(body, ts),
               "CONTENT_TYPE": "application/json"}
    assert gate.check(environ, body) == Admitted({"type": "event_callback", "event": {"type": "app_home_opened"}})
    replay = gate.check(environ, body)
    assert replay is not None and replay.status == 200
    resigned = {**environ, "HTTP_X_SLACK_REQUEST_TIMESTAMP": str(NOW + 1),
                "HTTP_X_SLACK_SIGNATURE": _sign(body, str(NOW + 1))}
    assert not isinstance(gate.check(resigned, body), Refusal)  # Slack's retry is re-signed: the listener's event_id decides
    forged = {**environ, "HTTP_X_SLACK_SIGNATURE": _sign(body, ts, "other")}
    assert gate.check(forged, body).status == 401 and len(seen) == 2  # never reaches the replay memory



def test_the_gate_claims_an_events_delivery_key_with_its_replay_check() -> None:
    asked: list[tuple[str, tuple[str, int] | None]] = []
    claimed: set[str] = set()

    def admit(key: str, delivery: tuple[str, int] | None) -> tuple[bool, bool | None]:
        asked.append((key, delivery))
        first = delivery is not None and delivery[0] not in claimed
        if delivery is not None:
            claimed.add(delivery[0])
        return False, first

    gate = SlackGate(SECRET, admit, clock=lambda: NOW)
    body = b'{"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_home_opened"}}'
    for ts in (NOW, NOW + 1):  # Slack's retry: the same event, signed again
        environ = {"HTTP_X_SLACK_REQUEST_TIMESTAMP": str(ts), "HTTP_X_SLACK_SIGNATURE": _sign(body, str(ts)),
                   "CONTENT_TYPE": "application/json"}
        admitted = gate.check(environ, body)
        assert isinstance(admitted, Admitted) and admitted.first_delivery is (ts == NOW)
    assert [delivery for _, delivery in asked] == [("event:Ev1", 3600)] * 2 and asked[0][0] != asked[1][0]

def test_the_body_is_read_once_as_bolt_would_read_it() -> None:
    command = shape("application/x-www-form-urlencoded",
                    b"command=%2Frollback&user_id=U1&text=code+prod+the+payload+step+broke&text=last+wins")
    assert command == {"command": "/rollback", "user_id": "U1", "text": "last wins"}
    said_payload = shape("application/x-www-form-urlencoded", b"command=%2Frollback&user_id=U1&text=payload")
    assert isinstance(said_payload, dict) and said_payload["text"] == "payload"  # Bolt alone would read {}
    click = shape("application/x-www-form-urlencoded",
                  b"payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A%7B%22id%22%3A%22U1%22%7D%2C"
                  b"%22actions%22%3A%5B%7B%22action_id%22%3A%22approve%22%7D%5D%7D")
    assert click == {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "approve"}]}
