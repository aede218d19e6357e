"""handlers.request_jobs: the web process writes a request as one job; the worker plans it once,
answers the requester where they asked, and never plans it twice nor late."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from handlers import monitoring
from handlers.commands import Rollback
from handlers.model import Status
from handlers.request_jobs import REQUEST_JOB, STALE_AFTER, ReplyTo, queue_request
from handlers.store import DueJob
from tests.fakes.world import ALICE, EVE, FakeWorld, fake_world

CMD = Rollback("code", "prod", "checkout 500")
REPLY = ReplyTo(channel="C0ASKED", response_url="https://hooks.slack.test/commands/1")


def _claim(w: FakeWorld) -> DueJob:
    [job] = [j for j in w.store.claim_due(w.clock.now(), "w1") if j.kind == REQUEST_JOB]
    return job


def test_queueing_writes_one_job_and_plans_nothing(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    queue_request(w.svc, ALICE, CMD, REPLY)
    assert w.store.recent(5) == [] and w.vercel.reads == 0 and w.notifier.count("root") == 0
    job = _claim(w)
    assert job.incident_id is None and job.payload["user"] == ALICE and job.payload["env"] == "prod"
    assert job.payload["reply"] == {"channel": "C0ASKED", "response_url": REPLY.response_url, "label": None}


def test_the_worker_plans_it_and_answers_the_requester(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    queue_request(w.svc, ALICE, CMD, REPLY)
    job = _claim(w)
    assert monitoring.process(w.svc, job) == "planned"
    [incident] = w.store.recent(5)
    assert incident.status is Status.PENDING and incident.requester == ALICE and incident.reason == "checkout 500"
    assert w.store.incident_for_request(job.id) == incident
    assert w.notifier.sent["answer"] == [(ALICE, f":rewind: {incident.ref} is waiting for approval in <#C01INCIDENTS>.")]
    assert w.notifier.count("root") == 1


def test_a_job_run_again_after_its_worker_died_finds_its_incident(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    queue_request(w.svc, ALICE, CMD, REPLY)
    job = _claim(w)
    assert monitoring.process(w.svc, job) == "planned"
    assert monitoring.process(w.svc, job) == "planned before"  # the same job, claimed again after a crash
    [incident] = w.store.recent(5)
    assert w.notifier.count("root") == 1
    assert "was planned from your request and is pending" in w.notifier.sent["answer"][-1][1]


def test_one_incident_per_job_even_when_two_runners_race(tmp_path: Path) -> None:
    from handlers.requests import request_rollback

    w = fake_world(tmp_path)
    request_rollback(w.svc, ALICE, CMD, request_job=7)
    w.store.transition(1, [Status.PENDING], Status.CANCELLED)  # the environment's lock is free again
    with pytest.raises(ValueError, match="already planned"):
        request_rollback(w.svc, ALICE, CMD, request_job=7)
    assert len(w.store.recent(5)) == 1


def test_a_refused_request_is_answered_and_starts_nothing(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    queue_request(w.svc, EVE, Rollback("code", "prod", "not mine to ask"), REPLY)
    assert monitoring.process(w.svc, _claim(w)) == "refused"
    assert w.store.recent(5) == []
    [(user, text)] = w.notifier.sent["answer"]
    assert user == EVE and text.startswith(":no_entry: Not started:")


def test_a_request_the_workers_reached_too_late_is_not_started(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    queue_request(w.svc, ALICE, CMD, REPLY)
    w.clock.advance(STALE_AFTER + timedelta(minutes=1))
    assert monitoring.process(w.svc, _claim(w)) == "stale"
    assert w.store.recent(5) == [] and w.vercel.reads == 0
    assert "waited 11 minutes for Rollbot's worker, so nothing was done" in w.notifier.sent["answer"][0][1]


def test_a_failure_while_planning_is_told_and_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = fake_world(tmp_path)
    queue_request(w.svc, ALICE, CMD, REPLY)

    def down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("store down")

    monkeypatch.setattr(w.store, "create_incident", down)
    job = _claim(w)
    assert monitoring.process(w.svc, job) == "failed"
    assert "could not be planned (ConnectionError); nothing was done" in w.notifier.sent["answer"][0][1]
    assert w.store.claim_due(w.clock.now() + timedelta(hours=1), "w1") == []  # done, not due again


def test_a_drill_and_a_decided_request_say_so(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    queue_request(w.svc, ALICE, Rollback("code", "prod", "matrix", issue="bug", severity="high"),
                  ReplyTo(channel="C0ASKED", label="Bad deploy"))
    assert monitoring.process(w.svc, _claim(w)) == "planned"
    assert "(Bad deploy, severity high) is waiting for approval" in w.notifier.sent["answer"][0][1]


def test_a_failure_after_the_root_message_was_posted_still_tells_the_requester_it_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database restarting during the last redraw: the incident is in the channel, so the
    requester hears that it waits for approval, not that it was interrupted."""
    w = fake_world(tmp_path)
    queue_request(w.svc, ALICE, CMD, REPLY)

    def restarting(*args: object, **kwargs: object) -> None:
        raise ConnectionError("terminating connection due to administrator command")

    monkeypatch.setattr(w.svc, "redraw_root", restarting)
    assert monitoring.process(w.svc, _claim(w)) == "planned"
    [incident] = w.store.recent(5)
    assert w.notifier.count("root") == 1
    assert w.notifier.sent["answer"] == [(ALICE, f":rewind: {incident.ref} is waiting for approval in <#C01INCIDENTS>.")]
