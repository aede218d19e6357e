"""The runbook's "Documentation Updates" through the real app: Carol resolves with two follow-ups
(each with an owner), the summary lists them, the worker DMs each owner with "Mark done" once per
round and again a day later, someone else's click is refused, the owner's click marks it done, and
the reminders stop. Real HTTP to `rollbot web`, the Slack emulator, Postgres and Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

from sandbox.slack_client import SignedSlackClient
from sandbox.team import ALICE, BOB, CAROL, CHANNEL, DAN
from tests.world import BotServer, World, wait_until


def _text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or [], ensure_ascii=False) + (message.get("text") or "")


def _top(message: dict[str, Any]) -> bool:
    return not message.get("thread_ts") or message["thread_ts"] == message["ts"]


def _view(world: World, callback: str, has_block: str) -> dict[str, Any]:
    return wait_until(lambda: next((v for v in world.slack.views.values() if v.get("callback_id") == callback
                                    and has_block in {b.get("block_id") for b in v["blocks"]}), None),
                      message=f"the {callback} with {has_block}")


def _text_input(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def _owner(user: str) -> dict[str, Any]:
    return {"value": {"type": "users_select", "selected_user": user}}


def _dms(world: World, user: str) -> list[dict[str, Any]]:
    dm = world.slack.dm_channel(user)
    assert dm is not None
    return world.slack.messages(dm)


def _summary(world: World) -> dict[str, Any]:
    return wait_until(lambda: next((m for m in world.slack.messages(CHANNEL)
                                    if "Post-incident summary" in _text(m) and _top(m)), None),
                      message="the post-incident summary")


def test_follow_ups_from_resolve_to_done(world: World, bot: BotServer) -> None:
    client: SignedSlackClient = bot.client(world)
    client.command(ALICE, "code prod checkout returns 500", channel_id=CHANNEL)
    root = world.work_until(lambda: next((m for m in world.slack.messages(CHANNEL) if _top(m)), None),
                            message="the root message")
    client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
    world.work_until(lambda: "resolve" in _text(world.slack.message(CHANNEL, root["ts"])), message="monitoring")

    # The Resolve modal: one row per category, "Add another" adds a row (typed values are kept by Slack).
    client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="resolve")
    view = _view(world, "resolve_modal", "follow_up-docs-0-owner")
    assert client.click_in_view(CAROL, view["id"], "follow_up_add", "docs").status_code == 200
    view = _view(world, "resolve_modal", "follow_up-docs-1")
    assert view["private_metadata"].endswith(":2:1")

    # A follow-up without an owner is refused on its field; nothing is resolved.
    values = {"root_cause": _text_input("Catalog cache served stale prices"),
              "lessons": _text_input("Canary cache changes"),
              "follow_up-docs-0": _text_input("Runbook step 3: purge the CDN <!channel>"),
              "follow_up-docs-1": _text_input("A row nobody owns"),
              "follow_up-tests-0": _text_input("E2E test of checkout with a stale cache"),
              "follow_up-tests-0-owner": _owner(DAN)}
    refused = client.submit_view(CAROL, view["id"], {**values, "follow_up-docs-0-owner": _owner(BOB)})
    assert refused.json() == {"response_action": "errors",
                              "errors": {"follow_up-docs-1-owner": "Who owns this? Pick an owner, or clear the text."}}
    assert not any("Post-incident summary" in _text(m) for m in world.slack.messages(CHANNEL))

    del values["follow_up-docs-1"]
    assert client.submit_view(CAROL, view["id"], {**values, "follow_up-docs-0-owner": _owner(BOB)}).status_code == 200
    text = _text(_summary(world))
    assert "*Follow-ups* (0/2 done" in text
    assert "Runbook step 3: purge the CDN &lt;!channel&gt;" in text and "<!channel>" not in text
    assert f"<@{BOB}> · open" in text and f"E2E test of checkout with a stale cache — <@{DAN}> · open" in text

    # The worker DMs each owner once, with the incident, the summary's link and a Mark done button.
    worker = world.worker()
    store = worker.container.services.store
    wait_until(lambda: (found := store.get(1)) and found.summary_ts, message="the summary recorded")
    worker.run_once()
    bob_dm = wait_until(lambda: _dms(world, BOB), message="Bob's DM")[0]
    dan_dm = wait_until(lambda: _dms(world, DAN), message="Dan's DM")[0]
    assert "Follow-up of RB-1" in _text(bob_dm) and "/archives/C01INCIDENTS/p" in _text(bob_dm)
    assert "purge the CDN &lt;!channel&gt;" in _text(bob_dm) and "stale cache" in _text(dan_dm)
    assert client.find_action(bob_dm, "follow_up_done")["type"] == "button"
    worker.run_once()
    assert (len(_dms(world, BOB)), len(_dms(world, DAN))) == (1, 1), "a second pass does not repeat"

    # A day later each is reminded again.
    world.advance(timedelta(hours=24))
    worker.run_once()
    wait_until(lambda: len(_dms(world, BOB)) == 2 and len(_dms(world, DAN)) == 2, message="the second reminders")
    assert "Reminder 2" in _text(_dms(world, BOB)[-1])

    # Dan's click on Bob's follow-up is refused; Bob's marks it done and redraws his DM in place.
    bob_channel = world.slack.dm_channel(BOB)
    assert bob_channel is not None
    latest = _dms(world, BOB)[-1]
    client.click(DAN, channel=bob_channel, message_ts=latest["ts"], action_id="follow_up_done")
    wait_until(lambda: any(f"Only its owner, <@{BOB}>" in _text(e) for e in world.slack.ephemerals(user=DAN)),
               message="Dan told he cannot")
    assert "follow_up_done" in _text(world.slack.message(bob_channel, latest["ts"]))
    client.click(BOB, channel=bob_channel, message_ts=latest["ts"], action_id="follow_up_done", value="1; DROP TABLE")
    wait_until(lambda: any("not one Rollbot drew" in _text(e) for e in world.slack.ephemerals(user=BOB)),
               message="a forged value refused")
    assert "follow_up_done" in _text(world.slack.message(bob_channel, latest["ts"]))
    client.click(BOB, channel=bob_channel, message_ts=latest["ts"], action_id="follow_up_done")
    done = wait_until(lambda: (m := world.slack.message(bob_channel, latest["ts"])) and "Done by" in _text(m) and m,
                      message="Bob's DM redrawn as done")
    assert "follow_up_done" not in _text(done) and done.get("edited")
    wait_until(lambda: "*Follow-ups* (1/2 done" in _text(_summary(world)), message="the summary redrawn")

    # The reminders stop for Bob; Dan's go on.
    world.advance(timedelta(hours=24))
    worker.run_once()
    wait_until(lambda: len(_dms(world, DAN)) == 3, message="Dan's third reminder")
    worker.run_once()
    assert len(_dms(world, BOB)) == 2
    assert world.slack.validation_errors == []

    # The report lists them with their status, who marked it done and when.
    env = {**os.environ, **world.env()}
    out = subprocess.run([sys.executable, "-m", "bot.cli", "report", "RB-1", "--format", "json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)["follow_ups"]
    assert [(f["category"], f["owner"], f["status"], f["done_by"]) for f in listed] == [
        ("docs", BOB, "done", BOB), ("tests", DAN, "open", None)]
    assert listed[0]["done_at"] and listed[0]["text"] == "Runbook step 3: purge the CDN <!channel>"
    audit = [(e["actor"], e["action"], e["outcome"]) for e in json.loads(out.stdout)["audit_log"]]
    assert (DAN, "follow_up.done", "refused") in audit and (BOB, "follow_up.done", "ok") in audit
    md = subprocess.run([sys.executable, "-m", "bot.cli", "report", "RB-1"], env=env, capture_output=True,
                        text=True, timeout=60)
    assert "## Follow-ups" in md.stdout and f"- [ ] Test to add: E2E test of checkout with a stale cache — owner {DAN} (open)" in md.stdout
