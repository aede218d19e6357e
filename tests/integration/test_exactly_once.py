"""Exactly-once Slack messages (SPEC §8), against the Slack emulator over real HTTP: every post
carries its identity in metadata; a post whose outcome is unknown (Slack took it and the
connection dropped, a 5xx after or before applying it, a process that died mid-post) is read back
and adopted, never doubled, never lost."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.exactly_once import EVENT_TYPE, identity
from handlers import approvals, follow_ups, monitoring, resolution
from handlers.commands import Rollback
from handlers.execution import execute
from handlers.model import Incident, NewFollowUp, Status
from handlers.requests import request_rollback
from handlers.services import Refused, Services
from sandbox.team import ALICE, BOB, CAROL, CHANNEL
from tests.world import BOT_TOKEN, World

FAULTS = ["drop_after", "error_after", "error_before", "internal_error_after"]


def _svc(world: World) -> Services:
    return world.container().services


def _mine(world: World, incident_id: int) -> list[dict[str, Any]]:
    return [m for m in world.slack.messages(CHANNEL)
            if (m.get("metadata") or {}).get("event_payload", {}).get("incident") == incident_id]


def _keys(world: World, incident_id: int) -> Counter[str]:
    return Counter(m["metadata"]["event_payload"]["key"] for m in _mine(world, incident_id))


def _monitoring(svc: Services) -> Incident:
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "exactly once"))
    assert approvals.approve(svc, CAROL, incident.id, incident.plan_hash).decided
    done = execute(svc, incident.id)
    assert done is not None and done.status is Status.MONITORING
    return done


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.reliability("fault", "Slack: the root message's post dropped or failed (after or before applying)")
def test_a_root_message_whose_post_went_wrong_is_in_the_channel_once(world: World, fault: str) -> None:
    svc = _svc(world)
    world.slack.script_fault("chat.postMessage", fault)
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", f"root {fault}"))
    assert incident.root_ts and incident.status is Status.PENDING
    roots = [m for m in _mine(world, incident.id) if m["metadata"]["event_payload"]["key"] == "root"]
    assert [m["ts"] for m in roots] == [incident.root_ts]
    assert roots[0]["metadata"] == identity(incident, "root")
    assert _keys(world, incident.id) == {"root": 1, "notify": 1}
    assert approvals.approve(svc, CAROL, incident.id, incident.plan_hash).decided


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.reliability("fault", "Slack: a reminder's post dropped or failed (after or before applying)")
def test_a_reminder_whose_post_went_wrong_is_in_the_thread_once(world: World, fault: str) -> None:
    svc = _svc(world)
    incident = _monitoring(svc)
    world.slack.script_fault("chat.postMessage", fault)
    world.advance(timedelta(minutes=5))
    assert monitoring.remind(svc, incident.id, 1, 3) == "reminded"
    assert monitoring.remind(svc, incident.id, 1, 3) == "already sent"
    assert _keys(world, incident.id)["monitor.1"] == 1


@pytest.mark.reliability("fault", "Slack: six posts in a row dropped after applying", trials=6)
def test_every_message_of_an_incident_carries_its_identity_and_none_is_doubled(world: World) -> None:
    svc = _svc(world)
    world.slack.script_fault("chat.postMessage", "drop_after", times=6)  # the next six posts all "time out"
    incident = _monitoring(svc)
    world.advance(timedelta(minutes=5))
    assert monitoring.remind(svc, incident.id, 1, 3) == "reminded"
    keys = _keys(world, incident.id)
    assert set(keys) >= {"root", "notify", "progress", "verification.r0", "monitor.1"}
    assert max(keys.values()) == 1
    bot_messages = [m for m in world.slack.messages(CHANNEL) if m.get("bot_id")]
    assert all((m.get("metadata") or {}).get("event_type") == EVENT_TYPE for m in bot_messages)


@pytest.mark.reliability("fault", "A process dies after Slack took a post, before recording it")
def test_a_crash_after_slack_took_the_post_is_adopted_on_the_next_attempt(world: World) -> None:
    """The process died after Slack accepted the reminder and before the ledger recorded it."""
    svc = _svc(world)
    incident = _monitoring(svc)
    world.advance(timedelta(minutes=5))
    assert svc.store.begin_message(incident.id, "monitor.1", svc.clock.now()).state == "new"
    assert svc.store.start_step(incident.id, "monitor.1", svc.clock.now())
    slack = WebClient(token=BOT_TOKEN, base_url=world.slack.url)
    posted = slack.chat_postMessage(channel=CHANNEL, thread_ts=incident.root_ts, text="reminder 1",
                                    metadata=identity(incident, "monitor.1"))
    world.advance(timedelta(minutes=3))  # the step's runner is gone
    assert monitoring.remind(svc, incident.id, 1, 3) == "reminded"
    assert _keys(world, incident.id)["monitor.1"] == 1
    assert svc.store.begin_message(incident.id, "monitor.1", svc.clock.now()).ts == posted["ts"]


@pytest.mark.reliability("fault", "A process dies after recording a post as started, before Slack took it")
def test_a_crash_before_slack_took_the_post_posts_it_once(world: World) -> None:
    svc = _svc(world)
    incident = _monitoring(svc)
    world.advance(timedelta(minutes=5))
    svc.store.begin_message(incident.id, "monitor.1", svc.clock.now())  # then the process died
    assert svc.store.start_step(incident.id, "monitor.1", svc.clock.now())
    world.advance(timedelta(minutes=3))
    assert monitoring.remind(svc, incident.id, 1, 3) == "reminded"
    assert _keys(world, incident.id)["monitor.1"] == 1


@pytest.mark.reliability("attack", "Someone else's message carrying a Rollbot message identity")
def test_a_message_by_another_app_with_the_same_identity_is_not_adopted(world: World) -> None:
    svc = _svc(world)
    incident = _monitoring(svc)
    world.advance(timedelta(minutes=5))
    svc.store.begin_message(incident.id, "monitor.1", svc.clock.now())
    world.slack.inject_message(CHANNEL, "forged", user=ALICE, thread_ts=incident.root_ts)
    [forged] = [m for m in world.slack.thread(CHANNEL, incident.root_ts) if m["text"] == "forged"]
    with world.slack.lock:  # a human's message cannot carry metadata through the API; make one that does
        world.slack.find_message(CHANNEL, forged["ts"])["metadata"] = identity(incident, "monitor.1")  # type: ignore[index]
    svc.store.start_step(incident.id, "monitor.1", svc.clock.now())
    world.advance(timedelta(minutes=3))
    assert monitoring.remind(svc, incident.id, 1, 3) == "reminded"
    ours = [m for m in world.slack.thread(CHANNEL, incident.root_ts)
            if m.get("bot_id") and (m.get("metadata") or {}).get("event_payload", {}).get("key") == "monitor.1"]
    assert len(ours) == 1


@pytest.mark.reliability("fault", "Slack: the summary and its link dropped after applying", trials=2)
def test_a_summary_whose_post_dropped_is_in_the_channel_once(world: World) -> None:
    svc = _svc(world)
    incident = _monitoring(svc)
    world.slack.script_fault("chat.postMessage", "drop_after", times=2)  # the summary and its link
    resolution.resolve(svc, CAROL, incident.id, "cause", "lessons")
    assert _keys(world, incident.id)["summary"] == 1 and _keys(world, incident.id)["summary.link"] == 1
    assert svc.store.get(incident.id).summary_ts
    world.advance(timedelta(minutes=1))
    world.worker().run_once()  # the queued delivery job finds nothing left to do
    assert _keys(world, incident.id)["summary"] == 1


@pytest.mark.reliability("fault", "Slack never confirms the root message and cannot be read back")
def test_an_unconfirmed_root_message_is_adopted_by_the_worker_when_slack_cannot_be_read(world: World) -> None:
    svc = _svc(world)
    world.slack.script_fault("chat.postMessage", "drop_after")
    world.slack.script_fault("conversations.history", "error_before", times=2)
    with pytest.raises(Refused, match="did not confirm"):
        request_rollback(svc, ALICE, Rollback("code", "prod", "unconfirmed"))
    [incident] = svc.store.open_incidents()
    assert incident.status is Status.PENDING and incident.root_ts is None
    assert _keys(world, incident.id) == {"root": 1}  # Slack has it; the bot does not know yet
    world.advance(monitoring.ORPHAN_AFTER + timedelta(seconds=5))
    world.worker().run_once()
    adopted = svc.store.get(incident.id)
    assert adopted.status is Status.PENDING and adopted.root_ts == _mine(world, incident.id)[0]["ts"]
    assert _keys(world, incident.id) == {"root": 1, "notify": 1}
    assert approvals.approve(svc, CAROL, incident.id, adopted.plan_hash).decided


@pytest.mark.reliability("fault", "Slack never confirms the root message and cannot be read back")
def test_an_unconfirmed_root_message_that_never_arrived_closes_the_request(world: World) -> None:
    svc = _svc(world)
    world.slack.script_fault("chat.postMessage", "error_before")  # a 503: not taken, but the bot cannot know
    world.slack.script_fault("conversations.history", "error_before", times=2)  # nor read the channel back
    with pytest.raises(Refused, match="did not confirm"):
        request_rollback(svc, ALICE, Rollback("code", "prod", "never arrived"))
    [incident] = svc.store.open_incidents()
    world.advance(monitoring.ORPHAN_AFTER + timedelta(seconds=5))
    world.worker().run_once()
    assert svc.store.get(incident.id).status is Status.FAILED
    assert _mine(world, incident.id) == []
    assert any("was interrupted before it reached Slack" in e["text"] for e in world.slack.ephemerals(user=ALICE))


@pytest.mark.reliability("fault", "Slack refuses the root message (archived channel)")
def test_a_post_slack_refused_is_not_read_back(world: World) -> None:
    svc = _svc(world)
    world.slack.archive_channel(CHANNEL)
    with pytest.raises(Refused, match="could not be posted"):
        request_rollback(svc, ALICE, Rollback("code", "prod", "archived"))
    assert world.slack.calls_to("conversations.history") == []
    assert svc.store.open_incidents() == []


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.reliability("fault", "Slack: an update dropped or failed (after or before applying)")
def test_an_update_whose_outcome_is_unknown_is_sent_again(world: World, fault: str) -> None:
    svc = _svc(world)
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", f"update {fault}"))
    assert CAROL not in json.dumps(world.slack.message(CHANNEL, incident.root_ts)["blocks"])
    world.slack.script_fault("chat.update", fault)
    assert approvals.approve(svc, CAROL, incident.id, incident.plan_hash).decided
    assert CAROL in json.dumps(world.slack.message(CHANNEL, incident.root_ts)["blocks"])  # the approval shows
    updates = world.slack.calls_to("chat.update")
    assert updates and updates[-1]["error"] is None and updates[-1]["status"] == 200


@pytest.mark.reliability("fault", "Slack: a post dropped in a public channel the bot is not a member of")
def test_a_channel_the_bot_only_posts_in_is_joined_to_read_it_back(world: World) -> None:
    svc = _svc(world)
    world.slack.remove_bot_from(CHANNEL)  # chat:write.public: it may post, but not read
    world.slack.script_fault("chat.postMessage", "drop_after")
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "not a member"))
    assert _keys(world, incident.id) == {"root": 1, "notify": 1}
    assert [c["error"] for c in world.slack.calls_to("conversations.history")][:1] == ["not_in_channel"]
    assert len(world.slack.calls_to("conversations.join")) == 1


@pytest.mark.reliability("fault", "Two processes post the same message at once")
def test_a_message_another_process_is_posting_is_left_to_it(world: World) -> None:
    svc = _svc(world)
    incident = _monitoring(svc)
    world.advance(timedelta(minutes=5))
    assert svc.store.begin_message(incident.id, "monitor.1", svc.clock.now()).state == "new"  # another process
    with pytest.raises(monitoring.RetryLater):
        monitoring.remind(svc, incident.id, 1, 3)
    assert _keys(world, incident.id)["monitor.1"] == 0
    world.advance(timedelta(minutes=2))  # that process died: its claim runs out, and nothing is in Slack
    assert monitoring.remind(svc, incident.id, 1, 3) == "reminded"
    assert _keys(world, incident.id)["monitor.1"] == 1


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.reliability("fault", "Slack: a follow-up's DM reminder dropped or failed (after or before applying)")
def test_a_follow_up_dm_whose_post_went_wrong_is_never_sent_twice(world: World, fault: str) -> None:
    """A DM is not read back (that needs the DM's ID and im:history): a reminder Slack may have
    taken is never posted again, and the next one comes at the cadence."""
    svc = _svc(world)
    incident = _monitoring(svc)
    resolution.resolve(svc, CAROL, incident.id, "cause", "lessons", [NewFollowUp("docs", "Fix step 3", BOB)])
    [follow_up] = svc.store.follow_ups(incident.id)
    dm = world.slack.dm_channel(BOB)
    assert dm is not None
    world.slack.script_fault("chat.postMessage", fault)
    assert follow_ups.remind(svc, follow_up.id, 1) == "uncertain"
    first = len(world.slack.messages(dm))
    assert first == (0 if fault == "error_before" else 1)
    assert follow_ups.remind(svc, follow_up.id, 1) == "uncertain"  # the job run again: still not re-posted
    assert len(world.slack.messages(dm)) == first
    assert follow_ups.remind(svc, follow_up.id, 2) == "reminded"
    keys = [m["metadata"]["event_payload"]["key"] for m in world.slack.messages(dm)]
    assert keys.count(f"follow_up.{follow_up.id}.2") == 1 and len(keys) == first + 1


def _long_timeline(svc: Services, incident: Incident, entries: int = 40) -> None:
    for n in range(entries):  # a long incident's reminders, each on the timeline
        svc.audit(incident.id, "rollbot", "remind", "ok", index=n)


def _timeline_in_thread(world: World, incident: Incident) -> str:
    parts = [m for m in world.slack.thread(CHANNEL, incident.root_ts)
             if (m.get("metadata") or {}).get("event_payload", {}).get("key", "").startswith("timeline.")]
    return "".join(b["text"]["text"] for m in parts for b in m["blocks"] if b["type"] == "section")


@pytest.mark.reliability("fault", "Slack: the full timeline's thread message refused after the summary went out")
def test_a_long_timeline_is_posted_whole_in_the_thread_once_through_a_retried_delivery(world: World) -> None:
    """The summary shows part of a 40-entry timeline and says the rest is in the thread; the
    timeline's thread message is refused (Slack 503) after the summary and its link went out, so
    the delivery is retried by the worker: the summary is not posted again, and the full timeline
    arrives once, every entry in it."""
    svc = _svc(world)
    incident = _monitoring(svc)
    _long_timeline(svc, incident)
    world.slack.script_fault("chat.postMessage", "error_before", times=3, skip=2)  # the summary and link go out
    resolution.resolve(svc, CAROL, incident.id, "cause", "lessons")
    assert _keys(world, incident.id)["summary"] == 1 and _keys(world, incident.id)["timeline.0"] == 0
    summary = next(m for m in _mine(world, incident.id) if m["metadata"]["event_payload"]["key"] == "summary")
    assert "the full timeline is in the incident's thread" in json.dumps(summary["blocks"])
    worker = world.worker()
    for _ in range(4):  # the job's backoff
        world.advance(timedelta(minutes=11))
        worker.run_once()
    keys = _keys(world, incident.id)
    assert keys["summary"] == 1 and keys["summary.link"] == 1 and keys["timeline.0"] == 1
    stored = svc.store.summary(incident.id)
    assert stored is not None and len(stored.timeline) > 40
    thread = _timeline_in_thread(world, incident)
    assert thread.count("Monitoring reminder") == 40 and "Requested" in thread and "Resolved" in thread
    assert world.slack.validation_errors == []


@pytest.mark.reliability("fault", "Slack: every post of a summary and its full timeline dropped after Slack took it")
def test_a_timeline_whose_parts_dropped_after_slack_took_them_is_not_doubled(world: World) -> None:
    """Every post of the delivery is applied by Slack and its answer lost: each is read back and
    adopted; the worker's job then finds nothing left to post."""
    svc = _svc(world)
    incident = _monitoring(svc)
    _long_timeline(svc, incident, entries=1000)  # long enough for two thread messages
    world.slack.script_fault("chat.postMessage", "drop_after", times=4)
    resolution.resolve(svc, CAROL, incident.id, "cause", "lessons")
    world.advance(timedelta(minutes=11))
    world.worker().run_once()
    keys = _keys(world, incident.id)
    assert (keys["summary"], keys["summary.link"], keys["timeline.0"], keys["timeline.1"]) == (1, 1, 1, 1)
    assert _timeline_in_thread(world, incident).count("Monitoring reminder") == 1000
    assert world.slack.validation_errors == []
