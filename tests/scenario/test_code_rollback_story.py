"""The whole story of a code rollback, through the real HTTP server, as the users live it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

from sandbox.block_kit import rich_text
from sandbox.slack_client import SignedSlackClient
from sandbox.team import ALICE, BOB, CAROL, CHANNEL, PROJECT
from tests.world import BotServer, World, wait_until


def _root(world: World) -> dict:
    roots = [m for m in world.slack.messages(CHANNEL) if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
    return roots[0]


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or [], ensure_ascii=False) + (message.get("text") or "")


def _ephemeral_for(world: World, user: str, contains: str) -> dict:
    return wait_until(
        lambda: next((e for e in world.slack.ephemerals(user=user) if contains in _text(e)), None),
        message=f"an ephemeral to {user} containing {contains!r}",
    )


def test_code_rollback_end_to_end(world: World, bot: BotServer) -> None:
    client: SignedSlackClient = bot.client(world)
    bad = world.vercel.production(PROJECT)
    good = next(d["uid"] for d in world.vercel.deployments(PROJECT) if d["uid"] != bad and d["meta"]["githubCommitMessage"].startswith("fix(checkout)"))

    # Alice asks; the ack comes at once, the incident follows.
    response = client.command(ALICE, "code prod checkout returns 500", channel_id=CHANNEL)
    assert response.status_code == 200
    root = world.work_until(lambda: world.slack.messages(CHANNEL) and _root(world), message="the root message")
    body = _text(root)
    assert "RB-1" in body and bad in body and good in body
    assert "checkout returns 500" in body
    assert "5m" in body and "risk Low" in body  # the decision matrix's target for code
    assert "Pre-rollback checklist" in body
    world.slack.message(CHANNEL, root["ts"])
    client.find_action(root, "approve")
    client.find_action(root, "deny")
    notify = wait_until(lambda: world.slack.thread(CHANNEL, root["ts"]), message="the team notification")
    assert "<!subteam^S01ONCALL>" in _text(notify[0])
    _ephemeral_for(world, ALICE, "waiting for approval")

    # Alice cannot approve her own request; Bob is not a lead.
    client.click(ALICE, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
    _ephemeral_for(world, ALICE, "four eyes")
    client.click(BOB, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
    _ephemeral_for(world, BOB, "`lead`")
    assert world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback") == []

    # Carol approves: one rollback on Vercel, progress in one message, verification in the thread.
    client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
    verified = world.work_until(
        lambda: next((m for m in world.slack.thread(CHANNEL, root["ts"]) if "Verified" in _text(m)), None),
        message="the verification message",
    )
    assert "passing" in _text(verified) or "HTTP 200" in _text(verified)
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1
    assert world.vercel.production(PROJECT) == good
    progress = [m for m in world.slack.thread(CHANNEL, root["ts"]) if "Progress" in _text(m)]
    assert len(progress) == 1, "one progress message, updated in place"
    assert progress[0].get("edited"), "the progress message was updated in place"
    assert "Verify" in _text(progress[0])
    root = world.slack.message(CHANNEL, root["ts"])
    assert "Approved by <@U01CAROL>" in _text(root)
    assert "approve" not in [e.get("action_id") for b in root["blocks"] for e in b.get("elements", [])]

    # The worker reminds the thread at +5m, +10m, +15m with fresh health results.
    worker = world.worker()
    assert worker.run_once() == 0  # nothing due yet
    for index in (1, 2, 3):
        world.advance(timedelta(minutes=5))
        worker.run_once()
        reminder = wait_until(
            lambda i=index: next((m for m in world.slack.thread(CHANNEL, root["ts"]) if f"Monitoring {i}/3" in _text(m)), None),
            message=f"reminder {index}",
        )
        assert "HTTP 200" in _text(reminder) and "Post-rollback checklist" in _text(reminder)
        if index == 1:  # Carol ticks the runbook's first post-rollback item on the incident message
            current = world.slack.message(CHANNEL, root["ts"])
            post = next(b for b in current["blocks"] if b.get("block_id", "").startswith("checklist-post-"))
            stable = [o for o in post["accessory"]["options"] if o["value"] == "post_stable"]
            client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="checklist", block_id=post["block_id"],
                         action_type="checkboxes", selected_options=stable)
            wait_until(lambda: "Post-rollback checklist* (1/6)" in _text(world.slack.message(CHANNEL, root["ts"])),
                       message="the ticked post-rollback item")
        if index > 1:
            assert "☑ Verify system is stable" in _text(reminder)
    assert worker.run_once() == 0
    for index in (1, 2, 3):  # each reminder exactly once
        assert len([m for m in world.slack.thread(CHANNEL, root["ts"]) if f"Monitoring {index}/3" in _text(m)]) == 1

    # Carol resolves: modal, then the post-incident summary in the channel, linked in the thread.
    final = [m for m in world.slack.thread(CHANNEL, root["ts"]) if "Monitoring 3/3" in _text(m)][0]
    client.click(CAROL, channel=CHANNEL, message_ts=final["ts"], action_id="resolve")
    view = wait_until(lambda: next((v for v in world.slack.views.values() if v.get("callback_id") == "resolve_modal"), None),
                      message="the resolve modal")
    response = client.submit_view(CAROL, view["id"], {
        "root_cause": {"value": rich_text("Catalog cache served stale prices")},
        "lessons": {"value": rich_text("Canary the cache change <!channel>")},
    })
    assert response.status_code == 200
    summary = wait_until(
        lambda: next((m for m in world.slack.messages(CHANNEL) if "Post-incident summary" in _text(m) and not m.get("thread_ts")), None),
        message="the post-incident summary",
    )
    text = _text(summary)
    assert "Catalog cache served stale prices" in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "<@U01CAROL>" in text and "within target" in text
    # pre: type, steps, notify, known good (verified healthy: Rollbot's); post: system stable (the person's)
    assert "*Checklist* (5/11)" in text and "Verify rollback target is known good state — Rollbot" in text
    wait_until(lambda: any("summary posted" in _text(m) for m in world.slack.thread(CHANNEL, root["ts"])),
               message="the summary link in the thread")
    assert world.slack.validation_errors == []
    # Every message the bot posted says which incident and which message it is, and none is doubled.
    identities = [(m.get("metadata") or {}).get("event_payload") for m in world.slack.messages(CHANNEL)
                  if m.get("bot_id")]
    assert all(i and i["incident"] == 1 and i["ref"] == "RB-1" for i in identities), identities
    keys = [i["key"] for i in identities]
    assert len(keys) == len(set(keys)) and {"root", "notify", "progress", "monitor.3", "summary"} <= set(keys)

    # The report, from the command line, as an operator would print it.
    env = {**os.environ, **world.env()}
    out = subprocess.run([sys.executable, "-m", "bot.cli", "report", "RB-1", "--format", "json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "resolved" and report["approvers"] == [CAROL]
    assert report["within_target"] is True and report["root_cause"] == "Catalog cache served stale prices"
    refused = {(r["actor"], r["action"]) for r in report["refused_attempts"]}
    assert (ALICE, "approve") in refused and (BOB, "approve") in refused
    assert [h["phase"] for h in report["health"]] == ["verify", "monitor 1/3", "monitor 2/3", "monitor 3/3"]
    audit = [(e["actor"], e["action"], e["outcome"]) for e in report["audit_log"]]
    assert ("rollbot", "vercel.rollback", "attempt") in audit and (CAROL, "approve", "ok") in audit
    md = subprocess.run([sys.executable, "-m", "bot.cli", "report", "RB-1"], env=env, capture_output=True,
                        text=True, timeout=60)
    assert md.returncode == 0 and md.stdout.startswith("# RB-1: Code rollback on prod (resolved)")
    assert "## Audit log" in md.stdout and "U01BOB approve: refused" in md.stdout
