"""Monitoring, resolution and the worker's due work, on fakes: reminders at most once, retries
only when Slack certainly refused, the summary once, orphaned requests closed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from handlers import approvals, monitoring, resolution
from handlers.execution import execute
from handlers.model import Status
from handlers.services import Refused
from tests.fakes.world import ALICE, BOB, CAROL, DAN, FakeWorld, fake_world

KINDS = ["code", "switch"]


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path)


def _monitored(w: FakeWorld, kind: str = "code") -> int:
    incident = w.request(ALICE, kind, name="checkout") if kind == "switch" else w.request(ALICE, kind)
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    assert execute(w.svc, incident.id).status is Status.MONITORING
    return incident.id


def _run_due(w: FakeWorld) -> list[str]:
    return [monitoring.process(w.svc, job) for job in w.store.claim_due(w.clock.now(), "test")]


@pytest.mark.parametrize("kind", KINDS)
def test_reminders_come_at_each_offset_once_with_fresh_health(w: FakeWorld, kind: str) -> None:
    _monitored(w, kind)
    checks = len(w.health.checked)
    assert _run_due(w) == []
    for index in (1, 2, 3):
        w.clock.advance(timedelta(minutes=5))
        assert _run_due(w) == ["reminded"]
        assert w.notifier.sent["reminder"][-1][1:] == (index, 3)
    assert len(w.health.checked) == checks + 3 and w.notifier.count("reminder") == 3
    w.clock.advance(timedelta(hours=1))
    assert _run_due(w) == []


def test_a_reminder_slack_refused_is_retried_with_backoff(w: FakeWorld) -> None:
    incident_id = _monitored(w)
    w.notifier.refuse.add("reminder")
    w.clock.advance(timedelta(minutes=5))
    assert _run_due(w) == ["retry"] and w.notifier.count("reminder") == 0
    [job] = [j for j in w.store.pending_jobs(incident_id) if j.payload["index"] == 1]
    assert job.due_at == w.clock.now() + timedelta(seconds=30)
    w.notifier.refuse.clear()
    w.clock.advance(timedelta(seconds=30))
    assert _run_due(w) == ["reminded"] and w.notifier.count("reminder") == 1


def test_a_reminder_that_may_have_been_posted_is_never_posted_again(w: FakeWorld) -> None:
    incident_id = _monitored(w)
    w.notifier.uncertain.add("reminder")
    w.clock.advance(timedelta(minutes=5))
    assert _run_due(w) == ["uncertain"]
    w.notifier.uncertain.clear()
    assert monitoring.remind(w.svc, incident_id, 1, 3) == "already sent"
    assert w.notifier.count("reminder") == 0


def test_reminders_stop_once_resolved(w: FakeWorld) -> None:
    incident_id = _monitored(w)
    resolution.resolve(w.svc, CAROL, incident_id, "cause", "lessons")
    w.clock.advance(timedelta(minutes=15))
    assert "reminded" not in _run_due(w)
    assert w.notifier.count("reminder") == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("user, allowed", [(ALICE, True), (BOB, True), (CAROL, True), (DAN, False)])
def test_who_may_resolve(w: FakeWorld, kind: str, user: str, allowed: bool) -> None:
    incident_id = _monitored(w, kind)
    if not allowed:
        with pytest.raises(Refused, match="can resolve"):
            resolution.resolve(w.svc, user, incident_id, "cause", "lessons")
        return
    resolved, summary = resolution.resolve(w.svc, user, incident_id, "cause <!channel>", "lessons")
    assert resolved.status is Status.RESOLVED and summary.root_cause == "cause <!channel>"
    assert summary.kind == kind and summary.title == w.svc.kinds[kind].title
    assert summary.within_target is True and w.notifier.count("summary") == 1
    with pytest.raises(Refused, match="is resolved"):
        resolution.resolve(w.svc, user, incident_id, "again", "again")
    assert w.notifier.count("summary") == 1


def test_a_summary_slack_refused_is_delivered_later_by_the_worker(w: FakeWorld) -> None:
    incident_id = _monitored(w)
    w.notifier.refuse.add("summary")
    resolution.resolve(w.svc, CAROL, incident_id, "cause", "lessons")
    assert w.notifier.count("summary") == 0
    w.notifier.refuse.clear()
    assert "posted" in _run_due(w) and w.notifier.count("summary") == 1
    assert "posted" not in _run_due(w)


def test_only_monitored_or_failed_incidents_resolve(w: FakeWorld) -> None:
    incident = w.request(ALICE)
    with pytest.raises(Refused, match="only a monitored or failed rollback can be resolved"):
        resolution.resolvable(w.svc, ALICE, incident.id)
    with pytest.raises(Refused, match="no incident waiting to be resolved"):
        resolution.resolvable(w.svc, ALICE, None)


def test_the_summary_times_the_rollback_against_the_kinds_target(w: FakeWorld) -> None:
    incident = w.request(ALICE)
    w.clock.advance(timedelta(minutes=7))  # slower than the code kind's 5 minutes
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    execute(w.svc, incident.id)
    _, summary = resolution.resolve(w.svc, CAROL, incident.id, "cause", "lessons")
    assert summary.time_to_rollback == "7m" and summary.target == "5m" and summary.within_target is False
    assert [t.what for t in summary.timeline][:3] == ["Requested", "Team notified", "Approved"]
    assert [e.label for e in summary.executed] == ["Ask Vercel to roll back", "Production alias moves",
                                                   "Verify (read-back + health checks)"]


def test_expiry_is_due_work(w: FakeWorld) -> None:
    incident = w.request(ALICE)
    w.clock.advance(timedelta(minutes=30))
    assert _run_due(w) == ["expired"]
    assert w.store.get(incident.id).status is Status.EXPIRED


def test_a_request_that_never_reached_slack_is_closed(w: FakeWorld) -> None:
    w.notifier.uncertain.add("root")
    with pytest.raises(Refused):
        w.request(ALICE)
    assert w.store.get(1).status is Status.FAILED  # closed at once: nothing to approve
    w.notifier.uncertain.clear()
    assert w.request(BOB).ref == "RB-2"
