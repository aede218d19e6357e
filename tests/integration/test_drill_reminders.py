"""The worker's drill and review reminders in ``[drills] channel``, with the real worker, Postgres,
Redis and the Slack emulator over HTTP: once when due, never again on the next passes nor from a
second worker, once more after ``remind_every``, none while a drill is recent, one message when
Slack's answer is lost; and a drill counted as a drill on ``/metrics``."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest

from bot.exactly_once import STANDING_EVENT_TYPE
from bot.wsgi import RollbotWSGI
from handlers import approvals, drills
from handlers.commands import Rollback
from handlers.model import Incident, Status
from handlers.requests import request_rollback
from sandbox.team import ALICE, CAROL
from tests.world import World, metric_samples

PLATFORM = "C03PLATFORM"
STAGING = "C02STAGING"
URL = "https://wiki.example.com/rollback"
DRILLS = f"""
[drills]
every = "91d"
channel = "{PLATFORM}"
procedure_reviewed = 2026-01-05
review_every = "90d"
procedure_url = "{URL}"
remind_every = "7d"

[environments.staging]
channel = "{STAGING}"
vercel_project = "prj_demo"
monitor = ["5m"]
"""


def _with_drills(world: World) -> None:
    world.config_path.write_text(world.config_path.read_text() + DRILLS)


def _reminders(world: World) -> Counter[tuple[str, int]]:
    found: Counter[tuple[str, int]] = Counter()
    for message in world.slack.messages(PLATFORM):
        metadata = message.get("metadata") or {}
        assert metadata.get("event_type") == STANDING_EVENT_TYPE, message  # nothing else is posted there
        found[(metadata["event_payload"]["series"], metadata["event_payload"]["seq"])] += 1
    return found


def _text(world: World, series: str, seq: int) -> str:
    [message] = [m for m in world.slack.messages(PLATFORM)
                 if (m["metadata"]["event_payload"]["series"], m["metadata"]["event_payload"]["seq"]) == (series, seq)]
    return str(message["blocks"])


def _drill(world: World) -> Incident:
    svc = world.container().services
    drill = request_rollback(svc, ALICE, Rollback("code", "staging", "quarterly drill"), drill=True)
    assert approvals.approve(svc, CAROL, drill.id, drill.plan_hash).decided
    return world.work_until(lambda: (i := svc.store.get(drill.id)) and i.status is Status.MONITORING and i,
                            message="the drill rolled back")


@pytest.mark.reliability("fault", "Slack: a drill reminder's answer lost after Slack took it; a second worker")
def test_the_worker_posts_each_reminder_once_again_weekly_and_not_after_a_drill(world: World) -> None:
    _with_drills(world)
    worker = world.worker()
    world.slack.script_fault("chat.postMessage", "drop_after")  # Slack takes the first post; its answer is lost
    worker.run_once()
    assert _reminders(world) == {("drill", 1): 1, ("review", 1): 1}  # read back and adopted, not posted again
    assert [c.get("fault") for c in world.slack.calls_to("chat.postMessage")] == ["drop_after", None]
    assert world.slack.calls_to("conversations.history")  # the dropped one was looked for, and found
    drill_text = _text(world, "drill", 1)
    assert "none is on record yet" in drill_text and "`/rollback drill code staging`" in drill_text
    assert "Create test deployment" in drill_text and "Update procedure if needed" in drill_text
    review_text = _text(world, "review", 1)
    assert f"<{URL}|Read the procedure>" in review_text and "last reviewed on 2026-01-05" in review_text
    assert "`procedure_reviewed = " in review_text

    for _ in range(3):  # the next passes, and a second worker (standing by, and even if it ran the upkeep)
        worker.run_once()
    second = world.worker("second-worker")
    second.run_once()
    assert not second.leading
    assert drills.remind(second.container.services) == []
    world.advance(timedelta(days=6))
    worker.run_once()
    assert _reminders(world) == {("drill", 1): 1, ("review", 1): 1}

    world.advance(timedelta(days=1))  # a week after the first: both still due
    worker.run_once()
    worker.run_once()
    assert _reminders(world) == {("drill", 1): 1, ("review", 1): 1, ("drill", 2): 1, ("review", 2): 1}

    done = _drill(world)  # a drill on staging: the next drill reminder waits for 91 days after it
    assert not [m for m in world.slack.messages(PLATFORM) if done.ref in str(m.get("blocks"))]
    world.advance(timedelta(days=7))
    worker.run_once()
    assert _reminders(world) == {("drill", 1): 1, ("review", 1): 1, ("drill", 2): 1, ("review", 2): 1,
                                 ("review", 3): 1}  # the review is still due; the drill is not
    world.advance(timedelta(days=84))  # 91 days after the drill
    worker.run_once()
    assert _reminders(world)[("drill", 3)] == 1
    assert f"*Last drill:* {done.ref}, code on staging" in _text(world, "drill", 3)
    assert world.slack.validation_errors == []


def test_no_reminder_without_a_drills_channel(world: World) -> None:
    world.worker().run_once()
    assert world.slack.messages(PLATFORM) == [] and world.slack.calls_to("chat.postMessage") == []


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_metrics_count_a_drill_as_a_drill(world: World) -> None:
    _with_drills(world)
    done = _drill(world)
    server = make_server("127.0.0.1", 0, RollbotWSGI(world.container()), handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}", trust_env=False, timeout=5) as http:
            metrics = metric_samples(http.get("/metrics").text)
            assert metrics[("rollbot_incidents", (("drill", "true"), ("status", "monitoring")))] == 1
            assert metrics[("rollbot_incidents", (("drill", "false"), ("status", "monitoring")))] == 0
            assert metrics[("rollbot_last_rollback_timestamp_seconds", (("drill", "true"),))] == \
                done.rolled_back_at.timestamp()
            assert metrics[("rollbot_last_rollback_timestamp_seconds", (("drill", "false"),))] == 0  # none yet
            assert metrics[("rollbot_drill_overdue", ())] == 0 and metrics[("rollbot_procedure_review_overdue", ())] == 1
            world.advance(timedelta(days=92))
            assert metric_samples(http.get("/metrics").text)[("rollbot_drill_overdue", ())] == 1
    finally:
        server.shutdown()
        server.server_close()
