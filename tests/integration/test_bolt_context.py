"""bot.app.bolt_app: every listener gets the bot's own Slack client (measured, bot.slack_api),
not a WebClient Bolt builds for each request, and no request can change that client's token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import Ack, App
from slack_bolt.request import BoltRequest

from bot.app import RollbotApp, bolt_app
from bot.slack_api import MeasuredWebClient
from sandbox.slack_emulator import SlackEmulator

TOKEN = "xoxb-bolt-context"
FORM = {"content-type": ["application/x-www-form-urlencoded"]}


@pytest.fixture()
def emulator() -> Iterator[SlackEmulator]:
    slack = SlackEmulator(TOKEN).start()
    try:
        yield slack
    finally:
        slack.stop()


@pytest.fixture()
def app(emulator: SlackEmulator) -> Iterator[RollbotApp]:
    """The Bolt app exactly as ``create_app`` builds it, without Rollbot's listeners."""
    executor = ThreadPoolExecutor(max_workers=2)
    try:
        yield bolt_app("unused", MeasuredWebClient(token=TOKEN, base_url=emulator.url, proxy=None, retry_handlers=[]),
                       executor)
    finally:
        executor.shutdown(wait=True)


def test_listeners_get_the_bots_own_client(app: RollbotApp) -> None:
    seen: list[Any] = []

    @app.command("/rollback")
    def command(ack: Ack, client: Any, context: dict[str, Any]) -> None:
        seen.append((client, context["client"], context["token"]))
        ack()

    for n in range(2):
        body = urlencode({"command": "/rollback", "text": "help", "user_id": "U1", "team_id": "T1",
                          "channel_id": "C1", "trigger_id": f"t{n}", "response_url": "https://example.invalid/r"})
        assert app.dispatch(BoltRequest(body=body, headers=FORM)).status == 200
    assert len(seen) == 2
    for listener_client, context_client, token in seen:
        assert listener_client is app.client and context_client is app.client
        assert token == TOKEN


def test_a_workflow_function_token_never_reaches_the_shared_client(app: RollbotApp) -> None:
    """A block action from a workflow function carries that function's token; Bolt would set it
    on the request's client, which here is the bot's one client."""

    @app.action("approve")
    def approve(ack: Ack) -> None:
        ack()

    payload = {"type": "block_actions", "user": {"id": "U1"}, "team": {"id": "T1"}, "api_app_id": "A1",
               "actions": [{"action_id": "approve", "block_id": "b", "type": "button", "value": "1:x"}],
               "bot_access_token": "xwfp-function-token", "function_data": {"execution_id": "Fx1"}}
    body = urlencode({"payload": json.dumps(payload)})
    assert app.dispatch(BoltRequest(body=body, headers=FORM)).status == 200
    assert app.client.token == TOKEN


def test_the_context_holds_what_bolts_own_would(app: RollbotApp) -> None:
    """RollbotApp replaces Bolt's ``_init_context``: should a Bolt release put more into a
    request's context, this fails, so the replacement is brought up to date."""
    plain = App(signing_secret="unused", client=app.client, token_verification_enabled=False)
    body = urlencode({"command": "/rollback", "text": "help", "user_id": "U1", "team_id": "T1"})
    ours, theirs = BoltRequest(body=body, headers=FORM), BoltRequest(body=body, headers=FORM)
    app._init_context(ours)
    plain._init_context(theirs)
    assert set(ours.context) == set(theirs.context)
    assert ours.context["client"] is app.client and ours.context["token"] == theirs.context["token"] == TOKEN


def test_an_app_for_many_workspaces_is_refused(emulator: SlackEmulator) -> None:
    with pytest.raises(ValueError, match="one workspace"):
        RollbotApp(signing_secret="unused", authorize=lambda **_: None, token_verification_enabled=False)
