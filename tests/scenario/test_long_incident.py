"""A long incident, end to end through the real web server, the worker and both emulators: 20
health checks (seven failing), 15 monitoring reminders, 10 approvers, a long reason, a root cause
of 3,500 characters and long lessons (rich text in the Resolve modal, past the 3,000 a plain-text
input takes), and a timeline longer than the summary shows.

Every payload the Slack emulator received (messages, updates, ephemerals, command replies,
views, the Home tab) keeps to Slack's documented limits, each message's top-level ``text`` stays
a short fallback, and nothing disappeared: every health check in the verification and in each
reminder (failing first), every approver on the root message, the whole reason, root cause and
lessons in the summary, and every timeline entry of the report in the incident's thread."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from typing import Any

from sandbox.block_kit import rich_text
from sandbox.slack_limits import DISPLAYED_TEXT, message_errors, view_errors
from sandbox.slack_validation import validate_view
from sandbox.team import ALICE, BOB, CHANNEL, PROJECT
from tests.world import LEADS, BotServer, World, wait_until

FAILING = (1, 4, 7, 10, 13, 16, 19)
REMINDERS = 15
APPROVERS = LEADS[:10]


def _urls(world: World) -> list[str]:
    """20 health checks of about 190 characters: the failing ones answer 404 from the emulator."""
    pad = "-".join(["segment"] * 18)
    return [f"{world.vercel.url}/site/{PROJECT}/api/missing/{n}/{pad}" if n in FAILING
            else f"{world.vercel.health_url(PROJECT)}?check={n}-{pad}" for n in range(20)]


def _configure(world: World) -> None:
    text = world.config_path.read_text()
    text = re.sub(r"^health_checks = .*$", "health_checks = " + json.dumps(_urls(world)), text, flags=re.M)
    text = re.sub(r"^monitor = .*$", "monitor = " + json.dumps([f"{m}m" for m in range(1, REMINDERS + 1)]), text,
                  flags=re.M)
    code = 'code = { approvers = ["lead"], approvals = 1 }'
    assert code in text
    world.config_path.write_text(text.replace(code, 'code = { approvers = ["lead"], approvals = 10 }'))


def _key(message: dict[str, Any]) -> str:
    return str(((message.get("metadata") or {}).get("event_payload") or {}).get("key", ""))


def _keyed(world: World, key: str) -> dict[str, Any] | None:
    return next((m for m in world.slack.messages(CHANNEL) if _key(m) == key), None)


def _prose(message: dict[str, Any]) -> str:
    """What a reader sees: the sections' texts (and fields, and context), in order."""
    out = []
    for block in message.get("blocks") or []:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e.get("text", "") for e in block.get("elements", []) if block["type"] == "context"]
    return "\n".join(out)


def _squeezed(text: str) -> str:
    return "".join(text.split())


def _payload_problems(call: dict[str, Any]) -> list[str]:
    """Slack's limits, checked again on each recorded call's arguments, with the displayed
    ``text`` of a message held to 4,000 characters (Slack shows no more of it)."""
    args = call["args"]
    problems: list[str] = []
    view = args.get("view")
    if view is not None:
        view = json.loads(view) if isinstance(view, str) else view
        problems += view_errors(view) + validate_view(view)
    blocks = args.get("blocks")
    if blocks is not None:
        problems += message_errors(json.loads(blocks) if isinstance(blocks, str) else blocks)
    if len(str(args.get("text") or "")) > DISPLAYED_TEXT:
        problems.append(f"text of {len(args['text'])} characters")
    return [f"{call['method']}: {p}" for p in problems]


def _health_listed(text: str, urls: list[str]) -> None:
    """Every URL is there, whole, and every failing one comes before every passing one."""
    squeezed = _squeezed(text)
    places = {n: squeezed.find(_squeezed(url)) for n, url in enumerate(urls)}
    assert all(place >= 0 for place in places.values()), [urls[n] for n, p in places.items() if p < 0]
    assert max(places[n] for n in FAILING) < min(p for n, p in places.items() if n not in FAILING)


def test_a_long_incident_keeps_every_payload_inside_slacks_limits_and_loses_nothing(world: World) -> None:
    _configure(world)
    urls = _urls(world)
    reason = "checkout returns 500 " + " ".join(f"detail-{n}" for n in range(150))  # about 1,400 characters
    root_cause = "\n".join(f"{n:02d} the catalog cache served stale prices after the deploy " + "c" * 40
                           for n in range(36))[:3500]
    assert len(root_cause) == 3500
    lessons = "\n".join(f"- lesson-{n} canary every cache change" for n in range(80))[:3200]
    bot = BotServer(world)
    try:
        client = bot.client(world)
        assert client.command(ALICE, f"code prod {reason}", channel_id=CHANNEL).status_code == 200
        root = world.work_until(lambda: _keyed(world, "root"), message="the root message")
        for lead in APPROVERS:
            client.click(lead, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
        verification = world.work_until(lambda: _keyed(world, "verification.r0"), timeout=60,
                                        message="the verification")
        assert world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback") != []
        worker = world.worker()
        for index in range(1, REMINDERS + 1):
            world.advance(timedelta(minutes=1))
            world.work_until(lambda i=index: _keyed(world, f"monitor.{i}"), message=f"reminder {index}")
        final = _keyed(world, f"monitor.{REMINDERS}")
        assert final is not None
        client.click(BOB, channel=CHANNEL, message_ts=final["ts"], action_id="resolve")  # not allowed to: told why
        client.click(ALICE, channel=CHANNEL, message_ts=final["ts"], action_id="resolve")
        modal = wait_until(lambda: next((v for v in world.slack.views.values()
                                         if v.get("callback_id") == "resolve_modal" and v.get("user") == ALICE), None),
                           message="the resolve modal")
        client.submit_view(ALICE, modal["id"], {
            "root_cause": {"value": rich_text(root_cause)},
            "lessons": {"value": rich_text(lessons)},
        })
        summary = world.work_until(lambda: _keyed(world, "summary"), timeout=30, message="the summary")
        world.work_until(lambda: _keyed(world, "timeline.0"), timeout=30, message="the full timeline in the thread")
        client.command(ALICE, "status", channel_id=CHANNEL)
        client.command(ALICE, "history 50", channel_id=CHANNEL)
        client.event({"type": "app_home_opened", "user": ALICE, "tab": "home", "channel": "D01ALICE"})
        home = wait_until(lambda: world.slack.home(ALICE), message="the home tab")
        for title in ("*Open rollbacks*", "*Recent rollbacks*"):
            wait_until(lambda t=title: any(t in json.dumps(e.get("blocks")) for e in world.slack.ephemerals(user=ALICE)),
                       message=f"the {title} reply")
        worker.run_once()
    finally:
        output = bot.stop()
    assert "Traceback" not in output, output[-3000:]

    # Every payload Slack received keeps to its limits: none refused, each checked again here.
    assert world.slack.validation_errors == []
    calls = world.slack.calls
    assert {"chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "views.publish"} <= {
        c["method"] for c in calls}
    assert [p for call in calls for p in _payload_problems(call)] == []
    assert validate_view(home) == [] and "RB-1" in json.dumps(home)

    # Every health check, failing first, in the verification and in each of the 15 reminders.
    _health_listed(_prose(verification), urls)
    for index in range(1, REMINDERS + 1):
        reminder = _keyed(world, f"monitor.{index}")
        assert reminder is not None and f"{index}/{REMINDERS}" in _prose(reminder)
        _health_listed(_prose(reminder), urls)

    # Every approver on the root message, and the whole reason.
    drawn = world.slack.message(CHANNEL, root["ts"])
    assert all(f"<@{lead}>" in _prose(drawn) for lead in APPROVERS)
    assert _squeezed(reason) in _squeezed(_prose(drawn))

    # The summary: the whole reason, root cause and lessons (split across sections, never cut);
    # the timeline shown in part says where the rest is.
    shown = _prose(summary)
    as_stored = "\n".join("• " + line.removeprefix("- ") for line in lessons.split("\n"))  # rich text's bullets
    for text in (reason, root_cause, as_stored):
        assert _squeezed(text) in _squeezed(shown)
    assert "the full timeline is in the incident's thread" in shown

    # Every timeline entry the report has is in the thread, in order.
    env = {**os.environ, **world.env()}
    out = subprocess.run([sys.executable, "-m", "bot.cli", "report", "RB-1", "--format", "json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["approvers"] == APPROVERS and len(report["health"]) == REMINDERS + 1
    entries = report["timeline"]
    assert len(entries) > 24 and sum(e["what"] == "Approved" for e in entries) == 10
    assert sum(e["what"] == "Monitoring reminder" for e in entries) == REMINDERS
    parts = sorted((m for m in world.slack.thread(CHANNEL, root["ts"]) if _key(m).startswith("timeline.")),
                   key=lambda m: int(_key(m).split(".")[1]))
    thread = "\n".join(line for m in parts for line in _prose(m).splitlines()[1:])
    expected = [f"`+{e['offset']}` {e['what']} — " + (f"<@{e['actor']}>" if e["actor"].startswith("U") else e["actor"])
                for e in entries]
    assert thread.splitlines() == expected

    # Nothing was posted twice.
    keys = [_key(m) for m in world.slack.messages(CHANNEL) if m.get("bot_id")]
    assert len(keys) == len(set(keys))
