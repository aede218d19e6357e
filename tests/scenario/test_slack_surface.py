"""Deny with a reason, the checklist, status and history: through the real HTTP server."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from sandbox.team import ALICE, BOB, CAROL, CHANNEL, PROJECT
from tests.world import BotServer, World, wait_until


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def test_deny_asks_for_a_reason_in_a_modal(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    client.command(ALICE, "code prod checkout 500", channel_id=CHANNEL)
    root = world.work_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="root")
    # The modal opens at once (its trigger lives 3 s); who may deny is checked on submit.
    client.click(BOB, channel=CHANNEL, message_ts=root["ts"], action_id="deny")
    bobs = wait_until(lambda: next((v for v in world.slack.views.values() if v["user"] == BOB), None), message="modal")
    client.submit_view(BOB, bobs["id"], {"reason": {"value": {"type": "plain_text_input", "value": "meh"}}})
    wait_until(lambda: any("only the requester or `lead` can deny" in _text(e) for e in world.slack.ephemerals(user=BOB)),
               message="refusal")
    assert "Waiting for approval" in _text(world.slack.message(CHANNEL, root["ts"]))
    client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="deny")
    view = wait_until(lambda: next((v for v in world.slack.views.values() if v["user"] == CAROL), None),
                      message="the deny modal")
    empty = client.submit_view(CAROL, view["id"], {"reason": {"value": {"type": "plain_text_input", "value": " "}}})
    assert empty.json()["response_action"] == "errors" and "reason" in empty.json()["errors"]
    client.submit_view(CAROL, view["id"], {"reason": {"value": {"type": "plain_text_input", "value": "fixing forward"}}})
    wait_until(lambda: "Denied by <@U01CAROL>" in _text(world.slack.message(CHANNEL, root["ts"])), message="denied root")
    note = wait_until(lambda: [m for m in world.slack.thread(CHANNEL, root["ts"]) if "was denied" in _text(m)],
                      message="the denial in the thread")
    assert "fixing forward" in _text(note[0]) and "<@U01ALICE>" in _text(note[0])
    assert world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback") == []


def test_checklist_ticks_update_the_root_message(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    client.command(ALICE, "code prod checkout 500", channel_id=CHANNEL)
    root = world.work_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="root")
    wait_until(lambda: "(3/5)" in _text(world.slack.message(CHANNEL, root["ts"])), message="notify ticked")
    current = world.slack.message(CHANNEL, root["ts"])
    accessory = next(b["accessory"] for b in current["blocks"] if b.get("accessory", {}).get("action_id") == "checklist")
    chosen = accessory["initial_options"] + [o for o in accessory["options"] if o["value"] == "root_cause"]
    client.click(ALICE, channel=CHANNEL, message_ts=root["ts"], action_id="checklist", action_type="checkboxes",
                 selected_options=chosen)
    wait_until(lambda: "(4/5)" in _text(world.slack.message(CHANNEL, root["ts"])), message="root cause ticked")


def test_status_and_history(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    def reply(text: str) -> str:
        seen = len(world.slack.ephemerals(user=BOB))
        assert client.command(BOB, text, channel_id=CHANNEL).status_code == 200
        return _text(wait_until(lambda: world.slack.ephemerals(user=BOB)[seen:], message=f"/rollback {text}")[0])

    quiet = reply("status")
    assert "None. All quiet." in quiet and "Last rollback:* never" in quiet and "Next drill:* due now" in quiet
    client.command(ALICE, "code prod checkout 500", channel_id=CHANNEL)
    world.work_until(lambda: world.slack.messages(CHANNEL), message="root")
    busy = reply("status")
    assert "RB-1" in busy and "Waiting for approval" in busy
    history = reply("history 5")
    assert "RB-1" in history and "checkout 500" in history



def test_refused_cancel_and_resolve_commands_are_answered_to_the_user_alone(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    client.command(ALICE, "code prod checkout 500", channel_id=CHANNEL)
    world.work_until(lambda: world.slack.messages(CHANNEL), message="root")

    def reply(user: str, text: str) -> str:
        seen = len(world.slack.ephemerals(user=user))
        assert client.command(user, text, channel_id=CHANNEL).status_code == 200
        return _text(wait_until(lambda: world.slack.ephemerals(user=user)[seen:], message=f"/rollback {text}")[0])

    assert ":no_entry:" in reply(BOB, "cancel RB-1") and "can cancel it" in reply(BOB, "cancel RB-1")
    assert ":no_entry:" in reply(BOB, "resolve RB-99")
    assert not [v for v in world.slack.views.values() if v["user"] == BOB]  # no modal for a refusal
    assert reply(ALICE, "cancel RB-1").endswith("RB-1 cancelled.")

def test_app_home_shows_open_rollbacks_and_the_last_one(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    assert client.event({"type": "app_home_opened", "user": BOB, "tab": "home", "channel": "D01BOB"}).status_code == 200
    home = wait_until(lambda: world.slack.home(BOB), message="the home view")
    assert "None. All quiet." in _text(home) and "Last rollback:* never" in _text(home) and "Next review:*" in _text(home)
    client.command(ALICE, "code prod checkout 500", channel_id=CHANNEL)
    world.work_until(lambda: world.slack.messages(CHANNEL), message="root")
    client.event({"type": "app_home_opened", "user": BOB, "tab": "home", "channel": "D01BOB"})
    wait_until(lambda: "RB-1" in _text(world.slack.home(BOB) or {}), message="RB-1 on the home tab")
    assert "Decision matrix" in _text(world.slack.home(BOB)) and world.slack.validation_errors == []


@pytest.mark.reliability("fault", "An Events API delivery retried by Slack")
def test_an_event_retried_by_slack_is_handled_once(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    opened = {"type": "app_home_opened", "user": BOB, "tab": "home", "channel": "D01BOB"}
    assert client.event(opened, event_id="Ev0HOME01").status_code == 200
    wait_until(lambda: world.slack.home(BOB), message="the home view")
    for retry in (1, 2):  # Slack re-delivers when it thinks an answer was lost
        assert client.event(opened, event_id="Ev0HOME01", retry_num=retry).status_code == 200
    time.sleep(1.0)  # a duplicate would have been published by now
    assert len(world.slack.calls_to("views.publish")) == 1
    assert client.event(opened, event_id="Ev0HOME02").status_code == 200  # a new opening is a new event
    wait_until(lambda: len(world.slack.calls_to("views.publish")) == 2, message="the second publish")


@pytest.mark.reliability("attack", "A modal submission Rollbot did not open")
def test_a_modal_submission_the_bot_did_not_open_is_answered_in_the_form(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    for callback, metadata in (("deny_modal", "not-a-number"), ("resolve_modal", ""), ("deny_modal", None)):
        view: dict = {"id": "V0FORGED", "type": "modal", "callback_id": callback, "state": {"values": {}}}
        if metadata is not None:
            view["private_metadata"] = metadata
        payload = {"type": "view_submission", "user": {"id": CAROL}, "team": {"id": "T0SANDBOX"}, "view": view}
        response = client.post_raw(("payload=" + urllib.parse.quote(json.dumps(payload))).encode(),
                                   "application/x-www-form-urlencoded")
        assert response.status_code == 200 and response.json()["response_action"] == "errors"
        assert "not one Rollbot opened" in json.dumps(response.json())
    assert "Traceback" not in bot.log_path.read_text(errors="replace")


def test_a_drill_on_production_is_refused_through_slack(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    client.command(ALICE, "drill code prod quarterly drill", channel_id=CHANNEL)
    refusal = world.work_until(lambda: [e for e in world.slack.ephemerals(user=ALICE)
                                        if "drills never touch one" in json.dumps(e)], message="the refusal")
    assert refusal and world.slack.messages(CHANNEL) == [] and world.vercel.calls_to("POST", "/v1/") == []
