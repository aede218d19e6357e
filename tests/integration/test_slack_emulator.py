"""Integration tests of the Slack Web API emulator and the signed Slack client.

Everything goes over real loopback HTTP: ``slack_sdk.WebClient`` /
``WebhookClient`` against the emulator, and ``SignedSlackClient`` against a
tiny stdlib server that verifies signatures with slack-sdk's verifier.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from prometheus_client import REGISTRY
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.slack_api import MeasuredWebClient
from sandbox.block_kit import find_action
from sandbox.slack_client import SignedSlackClient
from sandbox.slack_emulator import SlackEmulator
from sandbox.socket_mode import SocketModeServer

TOKEN = "xoxb-sandbox"
SECRET = "sandbox-signing-secret"
CHANNEL = "C0SANDBOX"

BUTTONS = [
    {"type": "section", "block_id": "summary", "text": {"type": "mrkdwn", "text": "*Roll back* `web` to v41?"}},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": "req-1",
            },
            {"type": "button", "action_id": "deny", "text": {"type": "plain_text", "text": "Deny"}, "value": "req-1"},
        ],
    },
]

MODAL = {
    "type": "modal",
    "callback_id": "rollback_reason",
    "title": {"type": "plain_text", "text": "Roll back"},
    "submit": {"type": "plain_text", "text": "Submit"},
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": "reason_input"},
        }
    ],
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure neither slack-sdk nor urllib route loopback traffic through a proxy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    with SlackEmulator(TOKEN) as slack:
        yield slack


@pytest.fixture
def web(emulator: SlackEmulator) -> WebClient:
    return WebClient(token=TOKEN, base_url=emulator.url, proxy=None, retry_handlers=[])


def _webhook(url: str) -> WebhookClient:
    return WebhookClient(url, proxy=None, retry_handlers=[])


def _api_error(call: Any, **kwargs: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call(**kwargs)
    return info.value


# ----------------------------------------------------------------------
# Web API


def test_auth_test_reports_bot_identity(web: WebClient) -> None:
    response = web.auth_test()
    assert response["user_id"] == "UROLLBOT"
    assert response["team_id"] == "T0SANDBOX"
    assert response["bot_id"]


def test_post_thread_update_and_replies(emulator: SlackEmulator, web: WebClient) -> None:
    parent = web.chat_postMessage(channel=CHANNEL, text="Rollback requested", blocks=BUTTONS)
    first = web.chat_postMessage(channel=CHANNEL, text="step 1", thread_ts=parent["ts"])
    second = web.chat_postMessage(channel=CHANNEL, text="step 2", thread_ts=parent["ts"], reply_broadcast=True)
    assert float(parent["ts"]) < float(first["ts"]) < float(second["ts"])
    assert parent["message"]["user"] == "UROLLBOT"

    updated = web.chat_update(channel=CHANNEL, ts=parent["ts"], text="Rollback approved", blocks=BUTTONS[:1])
    assert updated["ts"] == parent["ts"]
    assert updated["text"] == "Rollback approved"

    replies = web.conversations_replies(channel=CHANNEL, ts=parent["ts"])["messages"]
    assert [m["text"] for m in replies] == ["Rollback approved", "step 1", "step 2"]
    head = replies[0]
    assert head["reply_count"] == 2
    assert "edited" in head
    assert len(head["blocks"]) == 1

    assert [m["text"] for m in emulator.thread(CHANNEL, parent["ts"])] == ["step 1", "step 2"]
    assert len(emulator.messages(CHANNEL)) == 3
    assert emulator.messages("C_OTHER") == []
    assert emulator.message(CHANNEL, parent["ts"])["text"] == "Rollback approved"
    assert emulator.validation_errors == []
    assert [c["method"] for c in emulator.calls][-2:] == ["chat.update", "conversations.replies"]


def test_inspection_returns_copies(emulator: SlackEmulator, web: WebClient) -> None:
    ts = web.chat_postMessage(channel=CHANNEL, text="original")["ts"]
    emulator.messages(CHANNEL)[0]["text"] = "mutated"
    assert emulator.message(CHANNEL, ts)["text"] == "original"


def test_form_encoded_blocks_are_decoded(emulator: SlackEmulator, web: WebClient) -> None:
    response = web.api_call(
        "chat.postMessage", params={"channel": CHANNEL, "text": "form", "blocks": json.dumps(BUTTONS)}
    )
    stored = emulator.message(CHANNEL, response["ts"])
    assert stored["blocks"][1]["elements"][0]["action_id"] == "approve"
    assert emulator.validation_errors == []


@pytest.mark.parametrize(
    ("blocks", "fragment"),
    [
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "3000"),
        ([{"type": "actions", "elements": [{"type": "button", "action_id": "go"}]}], "text"),
        ([{"type": "fancy_block"}], "unknown"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "*bold*"}}], "plain_text"),
        ([{"type": "divider"}] * 51, "no more than 50 items allowed [json-pointer:/blocks]"),
    ],
    ids=["section-text-too-long", "button-without-text", "unknown-block", "mrkdwn-header", "too-many-blocks"],
)
def test_invalid_blocks_are_refused_and_recorded(
    emulator: SlackEmulator, web: WebClient, blocks: list[dict[str, Any]], fragment: str
) -> None:
    error = _api_error(web.chat_postMessage, channel=CHANNEL, text="fallback", blocks=blocks)
    assert error.response["error"] == "invalid_blocks"
    assert any(fragment in e for e in error.response["errors"])
    assert emulator.messages() == []
    assert len(emulator.validation_errors) == 1
    assert emulator.validation_errors[0]["method"] == "chat.postMessage"


_BUTTON = {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}}


@pytest.mark.parametrize(
    ("blocks", "error"),
    [
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
         "must be less than 2001 characters [json-pointer:/blocks/0/fields/0/text]"),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
         "no more than 10 items allowed [json-pointer:/blocks/0/fields]"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 3001}]}],
         "must be less than 3001 characters [json-pointer:/blocks/0/elements/0/text]"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
         "no more than 10 items allowed [json-pointer:/blocks/0/elements]"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
         "must be less than 151 characters [json-pointer:/blocks/0/text/text]"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "s"}}, {"type": "section", "text": {
            "type": "mrkdwn", "text": "s" * 3001}}], "must be less than 3001 characters [json-pointer:/blocks/1/text/text]"),
        ([{"type": "actions", "elements": [{**_BUTTON, "text": {"type": "plain_text", "text": "b" * 76}}]}],
         "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]"),
        ([{"type": "actions", "elements": [{**_BUTTON, "value": "v" * 2001}]}],
         "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]"),
        ([{"type": "actions", "block_id": "b" * 256, "elements": [_BUTTON]}],
         "must be less than 256 characters [json-pointer:/blocks/0/block_id]"),
        ([{"type": "actions", "elements": [{"type": "checkboxes", "action_id": "c", "options": [
            {"text": {"type": "mrkdwn", "text": "o"}, "value": f"v{n}"} for n in range(11)]}]}],
         "no more than 10 items allowed [json-pointer:/blocks/0/elements/0/options]"),
        ([{"type": "divider"}] * 51, "no more than 50 items allowed [json-pointer:/blocks]"),
    ],
    ids=["field-text", "fields", "context-text", "context-elements", "header", "second-section", "button-text",
         "button-value", "block-id", "checkbox-options", "blocks"],
)
def test_every_documented_limit_is_refused_with_slacks_pointer(
    emulator: SlackEmulator, web: WebClient, blocks: list[dict[str, Any]], error: str
) -> None:
    """Limits slack-sdk's models check and limits they do not: each is refused as Slack refuses
    it (invalid_blocks, the error with its JSON pointer, the same marked [ERROR] in
    response_metadata), for a post, an update and an ephemeral alike, and nothing is stored."""
    posted = web.chat_postMessage(channel=CHANNEL, text="fallback", blocks=[{"type": "divider"}])
    for call, args in ((web.chat_postMessage, {}), (web.chat_update, {"ts": posted["ts"]}),
                       (web.chat_postEphemeral, {"user": "U1"})):
        refused = _api_error(call, channel=CHANNEL, text="fallback", blocks=blocks, **args)
        assert refused.response["error"] == "invalid_blocks"
        assert refused.response["errors"][0] == error
        assert f"[ERROR] {error}" in refused.response["response_metadata"]["messages"]
    assert [m["blocks"][0]["type"] for m in emulator.messages()] == ["divider"] and emulator.ephemerals() == []
    assert len(emulator.validation_errors) == 3


def test_views_are_held_to_their_own_limits(emulator: SlackEmulator, web: WebClient) -> None:
    """A Home tab takes 100 blocks, not 101; a modal's title 24 characters, its metadata 3,000."""
    divider = {"type": "divider"}
    emulator.add_user("U1", "alice")
    web.views_publish(user_id="U1", view={"type": "home", "blocks": [divider] * 100})
    too_many = _api_error(web.views_publish, user_id="U1", view={"type": "home", "blocks": [divider] * 101})
    assert too_many.response["errors"][0] == "no more than 100 items allowed [json-pointer:/view/blocks]"
    home = {"type": "home", "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}]}
    field = _api_error(web.views_publish, user_id="U1", view=home)
    assert field.response["errors"][0] == "must be less than 2001 characters [json-pointer:/view/blocks/0/fields/0/text]"
    modal = {**MODAL, "title": {"type": "plain_text", "text": "t" * 25}, "private_metadata": "m" * 3001}
    refused = _api_error(web.views_open, trigger_id=emulator.new_trigger_id("U1"), view=modal)
    assert refused.response["errors"][:2] == ["must be less than 25 characters [json-pointer:/view/title/text]",
                                              "must be less than 3001 characters [json-pointer:/view/private_metadata]"]
    assert len(emulator.validation_errors) == 3


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_message_content_rules(emulator: SlackEmulator, web: WebClient) -> None:
    assert _api_error(web.chat_postMessage, channel=CHANNEL).response["error"] == "no_text"
    too_long = _api_error(web.chat_postMessage, channel=CHANNEL, text="x" * 40_001)
    assert too_long.response["error"] == "msg_too_long"
    missing = _api_error(web.chat_update, channel=CHANNEL, ts="1.000001", text="x")
    assert missing.response["error"] == "message_not_found"
    emulator.archive_channel("C_ARCHIVED")
    archived = _api_error(web.chat_postMessage, channel="C_ARCHIVED", text="x")
    assert archived.response["error"] == "is_archived"
    assert emulator.messages() == []


def test_post_ephemeral(emulator: SlackEmulator, web: WebClient) -> None:
    response = web.chat_postEphemeral(channel=CHANNEL, user="U1", text="only you", blocks=BUTTONS)
    assert response["message_ts"]
    (ephemeral,) = emulator.ephemerals(user="U1")
    assert ephemeral["text"] == "only you"
    assert ephemeral["channel"] == CHANNEL
    assert emulator.ephemerals(user="U2") == []
    assert emulator.messages() == []


def test_scripted_rate_limit(emulator: SlackEmulator, web: WebClient) -> None:
    emulator.script_rate_limit("chat.postMessage", times=1, retry_after=1)
    error = _api_error(web.chat_postMessage, channel=CHANNEL, text="hello")
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "1"
    assert error.response["error"] == "ratelimited"
    assert emulator.messages() == []

    web.chat_postMessage(channel=CHANNEL, text="hello")
    assert [c["status"] for c in emulator.calls_to("chat.postMessage")] == [429, 200]
    assert len(emulator.messages()) == 1


def test_views_open_update_and_triggers(emulator: SlackEmulator, web: WebClient) -> None:
    trigger = emulator.new_trigger_id("U1")
    view = web.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert view["id"].startswith("V")
    assert view["state"] == {"values": {}}
    assert emulator.views[view["id"]]["user"] == "U1"

    reused = _api_error(web.views_open, trigger_id=trigger, view=MODAL)
    assert reused.response["error"] == "invalid_trigger_id"
    unknown = _api_error(web.views_open, trigger_id="1.2.nope", view=MODAL)
    assert unknown.response["error"] == "invalid_trigger_id"

    emulator.trigger_expiry = 0.05
    stale = emulator.new_trigger_id("U1")
    time.sleep(0.1)
    expired = _api_error(web.views_open, trigger_id=stale, view=MODAL)
    assert expired.response["error"] == "expired_trigger_id"

    emulator.trigger_expiry = 3.0
    bad_view = {**MODAL, "title": {"type": "plain_text", "text": "A title far too long for Slack"}}
    invalid = _api_error(web.views_open, trigger_id=emulator.new_trigger_id("U1"), view=bad_view)
    assert invalid.response["error"] == "invalid_blocks"
    assert len(emulator.validation_errors) == 1

    updated = web.views_update(view_id=view["id"], view={**MODAL, "callback_id": "step2"}, hash=view["hash"])
    assert updated["view"]["callback_id"] == "step2"
    conflict = _api_error(web.views_update, view_id=view["id"], view=MODAL, hash=view["hash"])
    assert conflict.response["error"] == "hash_conflict"
    missing = _api_error(web.views_update, view_id="VNOPE", view=MODAL)
    assert missing.response["error"] == "not_found"
    assert len(emulator.views) == 1


def test_response_url_semantics_and_use_limit(emulator: SlackEmulator, web: WebClient) -> None:
    url = emulator.new_response_url(channel=CHANNEL, user="U1")
    hook = _webhook(url)
    assert hook.send(text="in channel", response_type="in_channel").status_code == 200
    assert hook.send(text="just for you").body == "ok"
    assert [m["text"] for m in emulator.messages(CHANNEL)] == ["in channel"]
    assert [e["text"] for e in emulator.ephemerals(user="U1")] == ["just for you"]

    for n in range(3):
        assert hook.send(text=f"more {n}").status_code == 200
    sixth = hook.send(text="one too many")
    assert (sixth.status_code, sixth.body) == (404, "used_url")
    assert len(emulator.response_posts[url.rsplit("/", 1)[1]]) == 5

    ts = web.chat_postMessage(channel=CHANNEL, text="Approve?", blocks=BUTTONS)["ts"]
    bound = _webhook(emulator.new_response_url(channel=CHANNEL, user="U1", message_ts=ts))
    assert bound.send(text="Approved", replace_original=True).status_code == 200
    assert emulator.message(CHANNEL, ts)["text"] == "Approved"
    assert emulator.message(CHANNEL, ts)["blocks"] == []
    assert bound.send(delete_original=True).status_code == 200
    assert ts not in [m["ts"] for m in emulator.messages(CHANNEL)]

    invalid = _webhook(emulator.new_response_url(channel=CHANNEL, user="U1"))
    refused = invalid.send(text="x", blocks=[{"type": "section"}])
    assert (refused.status_code, refused.body) == (400, "invalid_blocks")
    assert emulator.validation_errors[-1]["method"] == "response_url"


def test_users_and_usergroups(emulator: SlackEmulator, web: WebClient) -> None:
    emulator.add_user("U1", "alice", real_name="Alice Liddell", tz="Europe/Berlin")
    emulator.add_usergroup("S1", "oncall", ["U1", "U2"])
    user = web.users_info(user="U1")["user"]
    assert (user["name"], user["real_name"], user["tz"], user["is_bot"]) == (
        "alice",
        "Alice Liddell",
        "Europe/Berlin",
        False,
    )
    assert user["profile"] == {"display_name": "alice", "real_name": "Alice Liddell"}
    assert web.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    assert _api_error(web.users_info, user="U404").response["error"] == "user_not_found"
    assert _api_error(web.usergroups_users_list, usergroup="S404").response["error"] == "no_such_subteam"


def test_a_post_to_a_user_id_lands_in_the_apps_dm_with_them(emulator: SlackEmulator, web: WebClient) -> None:
    """As Slack does: chat.postMessage with ``channel`` = a user's ID posts in the app's DM with
    that user and answers with the DM's own ID, which chat.update then takes; history is read by
    the DM's ID, not the user's."""
    emulator.add_user("U0DMBOB", "bob")
    posted = web.chat_postMessage(channel="U0DMBOB", text="Follow-up for you", blocks=BUTTONS)
    dm = posted["channel"]
    assert dm.startswith("D") and dm == emulator.dm_channel("U0DMBOB") and emulator.dm_user(dm) == "U0DMBOB"
    assert [m["text"] for m in emulator.messages(dm)] == ["Follow-up for you"] and emulator.messages("U0DMBOB") == []
    web.chat_update(channel=dm, ts=posted["ts"], text="Done", blocks=BUTTONS[:1])
    assert emulator.message(dm, posted["ts"])["text"] == "Done"
    assert [m["ts"] for m in web.conversations_history(channel=dm)["messages"]] == [posted["ts"]]
    assert _api_error(web.conversations_history, channel="U0DMBOB").response["error"] == "channel_not_found"
    assert _api_error(web.chat_postMessage, channel="U0NOBODY", text="hi").response["error"] == "channel_not_found"


def test_auth_errors_and_unknown_methods(emulator: SlackEmulator) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=emulator.url, proxy=None, retry_handlers=[])
    assert _api_error(wrong.chat_postMessage, channel=CHANNEL, text="x").response["error"] == "invalid_auth"
    anonymous = WebClient(base_url=emulator.url, proxy=None, retry_handlers=[])
    assert _api_error(anonymous.auth_test).response["error"] == "not_authed"
    right = WebClient(token=TOKEN, base_url=emulator.url, proxy=None, retry_handlers=[])
    assert _api_error(right.api_call, api_method="reactions.add").response["error"] == "unknown_method"
    assert [c["error"] for c in emulator.calls] == ["invalid_auth", "not_authed", "unknown_method"]
    assert emulator.messages() == []


def test_state_endpoint_and_reset(emulator: SlackEmulator, web: WebClient) -> None:
    web.chat_postMessage(channel=CHANNEL, text="visible")
    with httpx.Client(trust_env=False) as http:
        state = http.get(f"{emulator.root_url}/_emulator/state").json()
    assert [m["text"] for m in state["messages"]] == ["visible"]
    assert set(state) >= {"messages", "ephemerals", "views"}
    emulator.reset()
    assert emulator.messages() == []
    assert emulator.calls == []


# ----------------------------------------------------------------------
# Signed client


class _BotStub(ThreadingHTTPServer):
    """Stands in for the bot's /slack/events: verifies signatures, records requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _BotStubHandler)
        self.verifier = SignatureVerifier(SECRET)
        self.requests: list[dict[str, Any]] = []
        self.reply: bytes = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/slack/events"

    def fields(self, index: int = -1) -> dict[str, str]:
        """Form fields of a recorded request."""
        return {k: v[0] for k, v in parse_qs(self.requests[index]["body"].decode()).items()}

    def payload(self, index: int = -1) -> dict[str, Any]:
        """Decoded interactivity ``payload`` of a recorded request."""
        return dict(json.loads(self.fields(index)["payload"]))


class _BotStubHandler(BaseHTTPRequestHandler):
    server: _BotStub

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        valid = self.server.verifier.is_valid_request(body, dict(self.headers.items()))
        self.server.requests.append({"path": self.path, "body": body, "valid": valid, "headers": dict(self.headers)})
        reply = self.server.reply if valid else b""
        self.send_response(200 if valid else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


@pytest.fixture
def bot() -> Iterator[_BotStub]:
    server = _BotStub()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def slack(bot: _BotStub, emulator: SlackEmulator) -> Iterator[SignedSlackClient]:
    with SignedSlackClient(bot.url, SECRET, emulator) as client:
        yield client


def test_signature_matches_slack_sdk(slack: SignedSlackClient) -> None:
    body, ts = b"token=x&text=hello", int(time.time())
    expected = SignatureVerifier(SECRET).generate_signature(timestamp=str(ts), body=body)
    assert slack.sign(body, ts) == expected
    assert slack.sign(body, ts, secret="other") != expected


def test_command_is_signed_and_slack_shaped(
    bot: _BotStub, slack: SignedSlackClient, emulator: SlackEmulator, web: WebClient
) -> None:
    emulator.add_user("U1", "alice")
    response = slack.command("U1", "web v41 because: broken deploy")
    assert response.status_code == 200
    request = bot.requests[-1]
    assert request["valid"] and request["path"] == "/slack/events"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    fields = bot.fields()
    assert fields["command"] == "/rollback"
    assert fields["text"] == "web v41 because: broken deploy"
    assert (fields["user_id"], fields["user_name"], fields["channel_id"]) == ("U1", "alice", CHANNEL)
    assert fields["team_id"] == "T0SANDBOX"
    assert fields["response_url"].startswith(f"{emulator.root_url}/response/")
    # the issued trigger id and response URL really work against the emulator
    assert web.views_open(trigger_id=fields["trigger_id"], view=MODAL)["ok"]
    assert _webhook(fields["response_url"]).send(text="Working on it").status_code == 200
    assert [e["text"] for e in emulator.ephemerals(user="U1", channel=CHANNEL)] == ["Working on it"]


def test_command_ack_body_is_shown_to_the_user(
    bot: _BotStub, slack: SignedSlackClient, emulator: SlackEmulator
) -> None:
    bot.reply = json.dumps({"text": "Queued rollback of web"}).encode()
    slack.command("U1", "web v41")
    (ephemeral,) = emulator.ephemerals(user="U1")
    assert ephemeral["text"] == "Queued rollback of web"


def test_forged_and_stale_requests_do_not_verify(bot: _BotStub, slack: SignedSlackClient) -> None:
    body, form = b"command=%2Frollback&text=web", "application/x-www-form-urlencoded"
    assert slack.post_raw(body, form).status_code == 200
    assert slack.post_raw(body, form, secret="not-the-secret").status_code == 401
    assert slack.post_raw(body, form, signature="v0=" + "0" * 64).status_code == 401
    assert slack.post_raw(body, form, signature="garbage").status_code == 401
    assert slack.post_raw(body, form, timestamp=int(time.time()) - 6 * 60).status_code == 401
    assert [r["valid"] for r in bot.requests] == [True, False, False, False, False]


def test_click_a_rendered_button(
    bot: _BotStub, slack: SignedSlackClient, emulator: SlackEmulator, web: WebClient
) -> None:
    ts = web.chat_postMessage(channel=CHANNEL, text="Approve?", blocks=BUTTONS)["ts"]
    response = slack.click("U2", channel=CHANNEL, message_ts=ts, action_id="approve")
    assert response.status_code == 200 and bot.requests[-1]["valid"]
    payload = bot.payload()
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U2"
    assert payload["container"] == {"type": "message", "message_ts": ts, "channel_id": CHANNEL, "is_ephemeral": False}
    assert payload["channel"]["id"] == CHANNEL
    assert payload["message"] == emulator.message(CHANNEL, ts)
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["type"], action["value"]) == (
        "approve",
        "decision",
        "button",
        "req-1",
    )
    # the response URL is bound to the clicked message
    assert _webhook(payload["response_url"]).send(text="Approved by <@U2>", replace_original=True).status_code == 200
    assert emulator.message(CHANNEL, ts)["text"] == "Approved by <@U2>"


def test_click_checkboxes_and_missing_action(slack: SignedSlackClient, emulator: SlackEmulator, web: WebClient) -> None:
    option = {"text": {"type": "plain_text", "text": "I checked the logs"}, "value": "logs"}
    blocks = [
        {
            "type": "actions",
            "block_id": "checks",
            "elements": [
                {"type": "checkboxes", "action_id": "ack_checks", "options": [option]},
            ],
        }
    ]
    ts = web.chat_postMessage(channel=CHANNEL, text="Checklist", blocks=blocks)["ts"]
    slack.click(
        "U1",
        channel=CHANNEL,
        message_ts=ts,
        action_id="ack_checks",
        action_type="checkboxes",
        selected_options=[option],
    )
    with pytest.raises(AssertionError, match="ack_checks"):
        slack.click("U1", channel=CHANNEL, message_ts=ts, action_id="nope")
    with pytest.raises(AssertionError, match="not a 'button'"):
        slack.click("U1", channel=CHANNEL, message_ts=ts, action_id="ack_checks")
    element = find_action(emulator.message(CHANNEL, ts), "ack_checks")
    assert element["block_id"] == "checks"


def test_click_payload_for_checkboxes(bot: _BotStub, slack: SignedSlackClient, web: WebClient) -> None:
    option = {"text": {"type": "plain_text", "text": "Logs"}, "value": "logs"}
    blocks = [{"type": "actions", "elements": [{"type": "checkboxes", "action_id": "c", "options": [option]}]}]
    ts = web.chat_postMessage(channel=CHANNEL, text="Checklist", blocks=blocks)["ts"]
    slack.click(
        "U1", channel=CHANNEL, message_ts=ts, action_id="c", action_type="checkboxes", selected_options=[option]
    )
    (action,) = bot.payload()["actions"]
    assert action["selected_options"] == [option]
    assert "value" not in action
    assert action["block_id"]  # Slack fills in a block_id when the app gave none


def test_submit_view(bot: _BotStub, slack: SignedSlackClient, emulator: SlackEmulator, web: WebClient) -> None:
    view_id = web.views_open(trigger_id=emulator.new_trigger_id("U1"), view=MODAL)["view"]["id"]
    values = {"reason": {"reason_input": {"type": "plain_text_input", "value": "bad deploy"}}}
    response = slack.submit_view("U1", view_id, values)
    assert response.status_code == 200 and bot.requests[-1]["valid"]
    payload = bot.payload()
    assert payload["type"] == "view_submission"
    assert payload["user"]["id"] == "U1"
    assert payload["view"]["id"] == view_id
    assert payload["view"]["callback_id"] == "rollback_reason"
    assert payload["view"]["state"] == {"values": values}
    with pytest.raises(AssertionError, match="reason"):
        slack.submit_view("U1", view_id, {"wrong_block": {}})
    with pytest.raises(AssertionError, match="no view"):
        slack.submit_view("U1", "VNOPE", values)


def test_apps_connections_open_takes_the_app_level_token_only(emulator: SlackEmulator, web: WebClient) -> None:
    server = SocketModeServer().start()
    try:
        with pytest.raises(SlackApiError) as unattached:
            web.apps_connections_open(app_token="xapp-1-nothing-attached")
        assert unattached.value.response["error"] == "invalid_auth"
        emulator.attach_socket_mode(server, "xapp-1-the-app-token")
        with pytest.raises(SlackApiError) as bot_token:
            web.api_call("apps.connections.open", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bot_token.value.response["error"] == "not_allowed_token_type"
        with pytest.raises(SlackApiError) as app_token:
            web.chat_postMessage(channel="C1", text="hi", token="xapp-1-the-app-token")
        assert app_token.value.response["error"] == "not_allowed_token_type"
        first, second = (web.apps_connections_open(app_token="xapp-1-the-app-token")["url"] for _ in range(2))
        assert first.startswith(f"ws://127.0.0.1:{server.port}/link/?ticket=") and first != second  # one ticket each
    finally:
        server.stop()


def test_the_bots_slack_client_measures_every_call_and_counts_its_errors(emulator: SlackEmulator) -> None:
    client = MeasuredWebClient(token=TOKEN, base_url=emulator.url, proxy=None, retry_handlers=[])

    def sample(name: str, status: str) -> float:
        return REGISTRY.get_sample_value(name, {"provider": "slack", "method": "chat.postMessage", "status": status}) or 0

    before = (sample("rollbot_provider_call_seconds_count", "ok"), sample("rollbot_provider_call_errors_total", "ok"),
              sample("rollbot_provider_call_errors_total", "service_unavailable"))
    client.chat_postMessage(channel="C0SANDBOX", text="hello")
    emulator.script_fault("chat.postMessage", "error_before")  # Slack answers 503 service_unavailable
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0SANDBOX", text="hello")
    after = (sample("rollbot_provider_call_seconds_count", "ok"), sample("rollbot_provider_call_errors_total", "ok"),
             sample("rollbot_provider_call_errors_total", "service_unavailable"))
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 0, 1]
