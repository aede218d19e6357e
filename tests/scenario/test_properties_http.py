"""The property tests' hostile inputs, sent signed to the real `rollbot web` (gunicorn) over
HTTP: whatever the body, the answer is a 200 or a clear 4xx, never a 5xx, and the logs hold no
traceback. (The unit tier checks the same inputs against the parsers directly.)

For the long run of 10,000 examples each:
``HYPOTHESIS_PROFILE=long python3 tasks.py test tests/scenario/test_properties_http.py``.
"""

from __future__ import annotations

import json
import os
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.team import ALICE, CHANNEL
from tests.world import BotServer, World

settings.register_profile("http-ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("http-long", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = "http-long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "http-ci"
EXAMPLES = settings.get_profile(PROFILE).max_examples

WORDS = st.sampled_from(["code", "prod", "production", "help", "status", "history 5", "resolve RB-1", "cancel RB-9",
                         "<!channel>", "<@U1>", "&amp;", "\x00", "\x1b[2J", "`", "*", "\u202e", "db", "env", "flag"])
COMMAND_TEXT = st.one_of(st.text(max_size=200), st.lists(st.one_of(WORDS, st.text(max_size=10)), max_size=8)
                         .map(" ".join))
JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                       lambda inner: st.one_of(st.lists(inner, max_size=4),
                                               st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)
PAYLOADS = st.dictionaries(
    st.sampled_from(["type", "user", "actions", "channel", "container", "message", "view", "trigger_id", "team"]),
    JSONISH).map(lambda d: d if "type" not in d else {**d, "type": d["type"]})
TYPED = st.builds(lambda t, rest: {**rest, "type": t},
                  st.sampled_from(["block_actions", "view_submission", "view_closed", "shortcut", "nonsense"]),
                  PAYLOADS)


def _ok(response_status: int, body: str) -> None:
    assert response_status in (200, 400, 404), (response_status, body[:300])


def _no_traceback(bot: BotServer) -> None:
    output = bot.log_path.read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.reliability("attack", "Random command text, signed, over HTTP (hypothesis)", trials=EXAMPLES)
def test_any_command_text_is_answered_without_a_5xx(world: World, bot: BotServer) -> None:
    client = bot.client(world)

    @settings(settings.get_profile(PROFILE))
    @given(COMMAND_TEXT)
    def one(text: str) -> None:
        response = client.command(ALICE, text, channel_id=CHANNEL)
        _ok(response.status_code, response.text)

    one()
    _no_traceback(bot)


@pytest.mark.reliability("attack", "Random interactive payloads, signed, over HTTP (hypothesis)", trials=EXAMPLES)
def test_any_interactive_payload_is_answered_without_a_5xx(world: World, bot: BotServer) -> None:
    client = bot.client(world)

    @settings(settings.get_profile(PROFILE))
    @given(st.one_of(PAYLOADS, TYPED))
    def one(payload: dict) -> None:
        body = ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()
        response = client.post_raw(body, "application/x-www-form-urlencoded")
        _ok(response.status_code, response.text)

    one()
    _no_traceback(bot)


@pytest.mark.reliability("attack", "Random bodies and content types, signed, over HTTP (hypothesis)", trials=EXAMPLES)
def test_any_body_is_answered_without_a_5xx(world: World, bot: BotServer) -> None:
    client = bot.client(world)

    @settings(settings.get_profile(PROFILE))
    @given(st.binary(max_size=400), st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                                      "text/plain", "application/json; charset=utf-8"]))
    def one(body: bytes, content_type: str) -> None:
        response = client.post_raw(body, content_type)
        _ok(response.status_code, response.text)

    one()
    _no_traceback(bot)
