"""Guarantees of SPEC §8 through the real HTTP server: exactly once, signed only, escaped."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.world import LEADS, BotServer, World, make_world, wait_until


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def _request(world: World, bot: BotServer, reason: str = "broken") -> dict:
    client = bot.client(world)
    assert client.command(ALICE, f"code prod {reason}", channel_id=CHANNEL).status_code == 200
    return world.work_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="the root message")


@pytest.mark.reliability("fault", "20 simultaneous Approve clicks; the deciding click re-delivered 3 times, once after a Redis flush", trials=23)
def test_twenty_simultaneous_approvals_and_a_replay_roll_back_once(world: World, bot: BotServer) -> None:
    root = _request(world, bot)
    client = bot.client(world)
    client.find_action(root, "approve")  # the Approve button is drawn

    def click(user: str) -> int:  # every approver clicks the message as drawn before any click landed
        return client.click(user, channel=CHANNEL, message_ts=root["ts"], action_id="approve",
                            message=root).status_code

    with ThreadPoolExecutor(max_workers=21) as pool:
        statuses = list(pool.map(click, LEADS))
    assert statuses == [200] * 20
    # Slack re-delivers the deciding click, byte for byte (re-signed, as Slack's retries are).
    decider = wait_until(lambda: _decided_by(world), message="the decision")
    deciding = next(p for p in client.sent_payloads if json.loads(p)["user"]["id"] == decider)
    body = ("payload=" + urllib.parse.quote(deciding)).encode()
    later = int(time.time()) + 1  # each re-delivery signed anew: a different request to the edge's replay filter
    for n in range(2):  # dropped by the listener's Redis de-duplication of the click
        assert client.post_raw(body, "application/x-www-form-urlencoded", timestamp=later + n).status_code == 200
    redis.Redis.from_url(world.redis_url).flushall()  # and with Redis empty, Postgres still refuses it
    assert client.post_raw(body, "application/x-www-form-urlencoded", timestamp=later + 2).status_code == 200

    world.work_until(lambda: any("Verified" in _text(m) for m in world.slack.thread(CHANNEL, root["ts"])),
                     timeout=30, message="verification")

    def refused_count() -> int:
        with psycopg.connect(world.database_url) as conn:
            return conn.execute("SELECT count(*) FROM audit_log WHERE action = 'approve' AND outcome = 'refused'"
                                ).fetchone()[0]

    wait_until(lambda: refused_count() >= 20, timeout=30, message="every click handled")
    time.sleep(1.0)  # any duplicate execution or late click would show itself now
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1
    with psycopg.connect(world.database_url) as conn:
        approvals = conn.execute("SELECT count(*) FROM approvals").fetchone()[0]
        decided = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'approved'").fetchone()[0]
        refused = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'approve' AND outcome = 'refused'").fetchone()[0]
        log = conn.execute("SELECT actor, action, outcome, detail->>'reason' FROM audit_log ORDER BY id").fetchall()
    assert approvals == 1 and decided == 1, log
    # 19 late clicks, and the re-delivery that got past the flushed Redis, are refused and audited.
    assert refused == 20, log
    progress = [m for m in world.slack.thread(CHANNEL, root["ts"]) if "Progress" in _text(m)]
    assert len(progress) == 1


def _decided_by(world: World) -> str | None:
    with psycopg.connect(world.database_url) as conn:
        row = conn.execute("SELECT decided_by FROM incidents WHERE id = 1").fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("case", ["forged", "garbage", "stale", "unsigned"])
@pytest.mark.reliability("attack", "Forged, stale, unsigned or garbage request signature")
def test_forged_and_stale_signatures_get_401(world: World, bot: BotServer, case: str) -> None:
    client = bot.client(world)
    body = urllib.parse.urlencode({"command": "/rollback", "text": "code prod", "user_id": ALICE,
                                   "channel_id": CHANNEL, "team_id": "T0SANDBOX"}).encode()
    kwargs: dict = {
        "forged": {"secret": "not-the-signing-secret"},
        "garbage": {"signature": "v0=deadbeef"},
        "stale": {"timestamp": int(time.time()) - 6 * 60},
        "unsigned": {"signature": ""},
    }[case]
    response = client.post_raw(body, "application/x-www-form-urlencoded", **kwargs)
    assert response.status_code == 401
    assert world.slack.messages() == []
    assert world.vercel.calls == [] or all(c["path"].startswith("/_emulator") for c in world.vercel.calls)


def test_a_correctly_signed_request_is_accepted(world: World, bot: BotServer) -> None:
    # The counterpart of the 401 tests: the same path with the right secret works.
    response = bot.client(world).command(ALICE, "help", channel_id=CHANNEL)
    assert response.status_code == 200 and "/rollback code" in response.text


@pytest.mark.reliability("attack", "Mentions and links in user text echoed to Slack")
def test_mentions_and_links_in_a_reason_are_escaped(world: World, bot: BotServer) -> None:
    root = _request(world, bot, "<!channel> ping <@U01CAROL> see <https://evil.example|here> & <!here>")
    body = _text(root)
    assert "&lt;!channel&gt;" in body and "&lt;@U01CAROL&gt;" in body and "&amp;" in body
    assert "<!channel>" not in body and "<!here>" not in body and "<https://evil" not in body


@pytest.mark.reliability("attack", "Unknown commands, typos and unknown environments", trials=3)
def test_nonsense_gets_a_helpful_ephemeral_reply(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    response = client.command(ALICE, "nonsense", channel_id=CHANNEL)
    assert response.status_code == 200
    reply = response.json()
    assert reply["response_type"] == "ephemeral"
    assert "`nonsense` is not a /rollback command" in reply["text"]
    assert "/rollback code" in reply["text"]
    typo = client.command(ALICE, "cod prod", channel_id=CHANNEL).json()
    assert "Did you mean `code`?" in typo["text"]
    unknown_env = client.command(ALICE, "code moon", channel_id=CHANNEL).json()
    assert "`moon` is not a configured environment" in unknown_env["text"] and "`prod`" in unknown_env["text"]
    assert world.slack.messages(CHANNEL) == []
    wait_until(lambda: _refusals(world) == 3, message="three refusals in the audit log")  # audited after the ack
    time.sleep(0.2)
    assert _refusals(world) == 3


def _refusals(world: World) -> int:
    with psycopg.connect(world.database_url) as conn:
        return int(conn.execute("SELECT count(*) FROM audit_log WHERE outcome = 'refused'").fetchone()[0])


@contextmanager
def _one_of_two_approvals(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[World, dict, Any]]:
    """A real web process, a policy that needs two approvers, and the first approval recorded:
    ``(world, the root message, the signed client)``."""
    world = make_world(database_url, redis_url, tmp_path, approvals=2)
    bot = BotServer(world)
    try:
        root = _request(world, bot)
        client = bot.client(world)
        client.click(LEADS[0], channel=CHANNEL, message_ts=root["ts"], action_id="approve")
        world.work_until(lambda: any("1 of 2" in _text(e) for e in world.slack.ephemerals(user=LEADS[0])), message="1 of 2")
        yield world, root, client
    finally:
        bot.stop()
        world.slack.stop()
        world.vercel.stop()
        world.close()


def test_two_approvers_needed_and_plan_binding(database_url: str, redis_url: str, tmp_path: Path) -> None:
    with _one_of_two_approvals(database_url, redis_url, tmp_path) as (world, root, client):
        # A button drawn for another plan does not count.
        stale = client.find_action(root, "approve")["value"].split(":")[0] + ":0000000000000000"
        client.click(LEADS[1], channel=CHANNEL, message_ts=root["ts"], action_id="approve", value=stale)
        wait_until(lambda: any("plan" in _text(e) for e in world.slack.ephemerals(user=LEADS[1])), message="plan refusal")
        assert world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback") == []
        client.click(LEADS[1], channel=CHANNEL, message_ts=root["ts"], action_id="approve")
        world.work_until(lambda: len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1,
                         message="the rollback after the second approval")


def test_a_click_delivered_again_and_signed_anew_counts_once_and_says_nothing(
        database_url: str, redis_url: str, tmp_path: Path) -> None:
    with _one_of_two_approvals(database_url, redis_url, tmp_path) as (world, _root, client):
        again = urllib.parse.urlencode({"payload": client.sent_payloads[-1]}).encode()
        # New timestamp, new signature: not a replay of the bytes, but the same click (action_ts).
        assert client.post_raw(again, "application/x-www-form-urlencoded", timestamp=int(time.time()) + 1).status_code == 200
        time.sleep(1.0)  # a refusal would be told by the web right after the ack
        world.work_until(lambda: True, message="the worker's turn")  # and any announce job run
        assert len([e for e in world.slack.ephemerals(user=LEADS[0]) if "pproval" in _text(e)]) == 1
        assert _refusals(world) == 0
        with psycopg.connect(world.database_url) as conn:
            assert conn.execute("SELECT count(*) FROM approvals").fetchone()[0] == 1


@pytest.mark.reliability("fault", "The bot's database gone when a command arrives")
def test_a_database_outage_gets_a_clear_message(world: World, bot: BotServer, postgres_server_url: str) -> None:
    client = bot.client(world)
    name = world.database_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    client.command(ALICE, "code prod checkout 500", channel_id=CHANNEL)
    note = wait_until(lambda: [e for e in world.slack.ephemerals(user=ALICE) if "database" in _text(e)],
                      timeout=20, message="the error message")
    assert "cannot reach its database right now" in _text(note[0]) and "may not have taken effect" in _text(note[0])
    assert world.vercel.calls_to("POST", "/v1/") == []
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:  # the fixture drops it again
        conn.execute(f'CREATE DATABASE "{name}"')


@pytest.mark.reliability("attack", "A signed command replayed byte for byte in its window, before and after a Redis flush", trials=2)
def test_a_signed_request_replayed_byte_for_byte_is_acted_on_once(world: World, bot: BotServer) -> None:
    """The same signed bytes again inside the 5-minute window open nothing, notify nobody and take
    no lock, even after Redis was flushed (Postgres remembers what Redis forgot)."""
    client = bot.client(world)
    body = urllib.parse.urlencode({"command": "/rollback", "text": "code prod replayed", "user_id": ALICE,
                                   "channel_id": CHANNEL, "team_id": "T0SANDBOX", "trigger_id": "1.2.3",
                                   "response_url": world.slack.new_response_url(channel=CHANNEL, user=ALICE)}).encode()
    ts = int(time.time())
    signature = client.sign(body, ts)
    first = client.post_raw(body, "application/x-www-form-urlencoded", timestamp=ts, signature=signature)
    assert first.status_code == 200 and "Planning" in first.text
    world.work_until(lambda: world.slack.messages(CHANNEL), message="the root message")
    again = client.post_raw(body, "application/x-www-form-urlencoded", timestamp=ts, signature=signature)
    assert again.status_code == 200 and again.text == ""
    redis.Redis.from_url(world.redis_url).flushall()
    third = client.post_raw(body, "application/x-www-form-urlencoded", timestamp=ts, signature=signature)
    assert third.status_code == 200 and third.text == ""
    time.sleep(1.0)
    with psycopg.connect(world.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM audit_log WHERE outcome = 'refused'").fetchone()[0] == 0
    roots = [m for m in world.slack.messages(CHANNEL) if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
    assert len(roots) == 1


@pytest.mark.parametrize("timestamp", ["abc", "1.5", "1e3", "", "-5", "99999999999999999999"])
@pytest.mark.reliability("attack", "Malformed X-Slack-Request-Timestamp (letters, decimals, exponent, empty, negative, huge)")
def test_a_malformed_timestamp_is_401_before_anything_is_parsed(world: World, bot: BotServer, timestamp: str) -> None:
    client = bot.client(world)
    response = httpx.post(client.events_url, content=b"{", headers={
        "Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + "0" * 64}, trust_env=False)
    assert response.status_code == 401 and "Timestamp" in response.json()["error"]


@pytest.mark.parametrize("content_type, body, status", [
    ("application/json", b"{", 400),
    ("application/json", b"[]", 400),
    ("application/json", b"null", 400),
    ("application/json", b'{"no": "type"}', 400),
    ("application/json", b"\xff\xfe{}", 400),
    ("application/x-www-form-urlencoded", b"payload=%7B", 400),
    ("application/x-www-form-urlencoded", b"payload=%5B%5D", 400),
    ("application/x-www-form-urlencoded", b"nothing=here", 400),
    ("text/plain", b"hello", 400),
])
@pytest.mark.reliability("attack", "Signed but malformed body (not JSON, not an object, no type, not UTF-8, wrong content type)")
def test_a_signed_but_malformed_payload_gets_a_clear_4xx_and_no_traceback(world: World, bot: BotServer,
                                                                         content_type: str, body: bytes,
                                                                         status: int) -> None:
    response = bot.client(world).post_raw(body, content_type)
    assert response.status_code == status and response.json()["error"]
    output = bot.log_path.read_text(errors="replace")
    assert "Traceback" not in output, output[-2000:]


@pytest.mark.reliability("attack", "NUL and control characters in a command")
def test_a_nul_in_a_command_is_refused_with_a_reply_that_says_so(world: World, bot: BotServer) -> None:
    response = bot.client(world).command(ALICE, "code prod a\x00b", channel_id=CHANNEL)
    assert response.status_code == 200 and "control character (U+0000)" in response.text
    assert "database" not in response.text
    wait_until(lambda: _refusals(world) == 1, message="the refusal in the audit log")  # audited after the ack
    with psycopg.connect(world.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == 0
    assert "Traceback" not in bot.log_path.read_text(errors="replace")


@pytest.mark.parametrize("value", ["", "abc", "1:" + "x" * 100, "99999999999999:x", "١:x"])
@pytest.mark.parametrize("action_id", ["approve", "deny"])
@pytest.mark.reliability("attack", "A button value Rollbot did not write (missing, forged, out of range)")
def test_a_button_whose_value_the_bot_did_not_write_is_acked_at_once_and_explained(
        world: World, bot: BotServer, action_id: str, value: str) -> None:
    client = bot.client(world)
    client.command(ALICE, "code prod checkout", channel_id=CHANNEL)
    root = world.work_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="the root message")
    started = time.monotonic()
    response = client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id=action_id, value=value)
    assert response.status_code == 200 and time.monotonic() - started < 1.0
    wait_until(lambda: any("not one Rollbot drew" in json.dumps(e) for e in world.slack.ephemerals(user=CAROL)),
               message="the explanation")
    assert "Traceback" not in bot.log_path.read_text(errors="replace")
