"""bot.app.RollbotApp: every listener gets the bot's own Slack client (measured, bot.slack_api),
not a WebClient Bolt builds for each request, and no request can change that client's token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import Ack
from slack_bolt.request import BoltRequest

from bot.app import RollbotApp
from bot.slack_api import MeasuredWebClient
from sandbox.slack_emulator import SlackEmulator

TOKEN = "xoxb-bolt-context"


@pytest.fixture()
def emulator() -> Iterator[SlackEmulator]:
    slack = SlackEmulator(TOKEN).start()
    try:
        yield slack
    finally:
        slack.stop()


def _app(emulator: SlackEmulator) -> tuple[RollbotApp, MeasuredWebClient]:
    client = MeasuredWebClient(token=TOKEN, base_url=emulator.url, proxy=None, retry_handlers=[])
    app = RollbotApp(signing_secret="unused", client=client, token_verification_enabled=False,
                     request_verification_enabled=False, attaching_function_token_enabled=False,
                     process_before_response=True)
    return app, client


def test_listeners_get_the_bots_own_client(emulator: SlackEmulator) -> None:
    app, client = _app(emulator)
    seen: list[Any] = []

    @app.command("/rollback")
    def command(ack: Ack, client: Any, context: dict[str, Any]) -> None:
        seen.append((client, context["client"], context["token"]))
        ack()

    for n in range(2):
        body = urlencode({"command": "/rollback", "text": "help", "user_id": "U1", "team_id": "T1",
                          "channel_id": "C1", "trigger_id": f"t{n}", "response_url": "https://example.invalid/r"})
        response = app.dispatch(BoltRequest(body=body, headers={"content-type": ["application/x-www-form-urlencoded"]}))
        assert response.status == 200
    assert len(seen) == 2
    for listener_client, context_client, token in seen:
        assert listener_client is client and context_client is client
        assert token == TOKEN


def test_a_workflow_function_token_never_reaches_the_shared_client(emulator: SlackEmulator) -> None:
    """A block action from a workflow function carries that function's token; Bolt would set it
    on the request's client, which here is the bot's one client."""
    app, client = _app(emulator)

    @app.action("approve")
    def approve(ack: Ack) -> None:
        ack()

    payload = {"type": "block_actions", "user": {"id": "U1"}, "team": {"id": "T1"}, "api_app_id": "A1",
               "actions": [{"action_id": "approve", "block_id": "b", "type": "button", "value": "1:x"}],
               "bot_access_token": "xwfp-function-token", "function_data": {"execution_id": "Fx1"}}
    body = urlencode({"payload": json.dumps(payload)})
    response = app.dispatch(BoltRequest(body=body, headers={"content-type": ["application/x-www-form-urlencoded"]}))
    assert response.status == 200
    assert client.token == TOKEN
