"""Monitoring, resolution and the worker's due work, on fakes: reminders once, retried while
Slack has not taken them, the summary once, interrupted requests adopted or closed."""

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


def test_a_reminder_whose_post_slack_did_not_confirm_is_tried_again_later(w: FakeWorld) -> None:
    """The notifier settles an unknown outcome by reading Slack back before posting (see
    tests/integration/test_exactly_once.py); the core only has to try again."""
    incident_id = _monitored(w)
    w.notifier.uncertain.add("reminder")
    w.clock.advance(timedelta(minutes=5))
    assert _run_due(w) == ["retry"]
    assert [s.status for s in w.store.steps(incident_id) if s.name == "monitor.1"] == ["uncertain"]
    w.notifier.uncertain.clear()
    w.clock.advance(timedelta(seconds=30))
    assert _run_due(w) == ["reminded"] and w.notifier.count("reminder") == 1
    assert monitoring.remind(w.svc, incident_id, 1, 3) == "already sent"


def test_a_reminder_whose_runner_died_mid_post_is_taken_over_once_stale(w: FakeWorld) -> None:
    incident_id = _monitored(w)
    w.clock.advance(timedelta(minutes=5))
    assert w.store.start_step(incident_id, "monitor.1", w.clock.now())  # then the process died
    with pytest.raises(monitoring.RetryLater):  # its runner may still be at it: look again later
        monitoring.remind(w.svc, incident_id, 1, 3)
    w.clock.advance(timedelta(minutes=3))
    assert monitoring.remind(w.svc, incident_id, 1, 3) == "reminded" and w.notifier.count("reminder") == 1


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


def test_a_root_message_slack_refused_closes_the_request_at_once(w: FakeWorld) -> None:
    w.notifier.refuse.add("root")
    with pytest.raises(Refused, match="could not be posted"):
        w.request(ALICE)
    assert w.store.get(1).status is Status.FAILED  # certainly not in Slack: nothing to approve
    w.notifier.refuse.clear()
    assert w.request(BOB).ref == "RB-2"


def _unconfirmed_request(w: FakeWorld) -> int:
    w.notifier.uncertain.add("root")
    with pytest.raises(Refused, match="did not confirm"):
        w.request(ALICE)
    w.notifier.uncertain.clear()
    incident = w.store.get(1)
    assert incident.status is Status.PENDING and incident.root_ts is None  # it may be in the channel
    return incident.id


def test_an_unconfirmed_root_message_that_slack_has_is_adopted(w: FakeWorld) -> None:
    incident_id = _unconfirmed_request(w)
    w.notifier.posted_unseen[incident_id] = "1700000000.000777"  # Slack took it; the caller never heard
    assert monitoring.settle_orphans(w.svc) == {}  # too early: the request may still be posting
    w.clock.advance(monitoring.ORPHAN_AFTER + timedelta(seconds=1))
    assert monitoring.settle_orphans(w.svc) == {incident_id: "adopted"}
    adopted = w.store.get(incident_id)
    assert (adopted.status, adopted.root_ts) == (Status.PENDING, "1700000000.000777")
    assert w.notifier.count("notify") == 1 and w.notifier.count("root") == 0  # never posted twice
    assert approvals.approve(w.svc, CAROL, incident_id, adopted.plan_hash).decided  # its buttons work
    assert monitoring.settle_orphans(w.svc) == {}
    assert ("rollbot", "slack.post_root", "adopted") in {(e.actor, e.action, e.outcome)
                                                          for e in w.store.audit_log(incident_id)}


def test_an_unconfirmed_root_message_that_slack_lacks_closes_the_request(w: FakeWorld) -> None:
    incident_id = _unconfirmed_request(w)
    w.clock.advance(monitoring.ORPHAN_AFTER + timedelta(seconds=1))
    assert monitoring.settle_orphans(w.svc) == {incident_id: "closed"}
    assert w.store.get(incident_id).status is Status.FAILED
    [(user, text)] = w.notifier.sent["tell"]
    assert user == ALICE and "RB-1" in text and "closed" in text
    assert w.request(BOB).ref == "RB-2"


def test_while_slack_cannot_be_read_an_unconfirmed_request_waits(w: FakeWorld) -> None:
    incident_id = _unconfirmed_request(w)
    w.clock.advance(monitoring.ORPHAN_AFTER + timedelta(seconds=1))
    w.notifier.uncertain.add("find_root")
    assert monitoring.settle_orphans(w.svc) == {incident_id: "unknown"}
    assert w.store.get(incident_id).status is Status.PENDING
    w.notifier.uncertain.clear()
    w.notifier.posted_unseen[incident_id] = "1700000000.000778"
    assert monitoring.settle_orphans(w.svc) == {incident_id: "adopted"}


def test_an_orphan_that_cannot_be_settled_does_not_stop_the_takeovers(w: FakeWorld) -> None:
    orphan = _unconfirmed_request(w)
    stalled = w.request(ALICE, "switch", name="checkout")  # another kind: not blocked by the orphan
    assert approvals.approve(w.svc, CAROL, stalled.id, stalled.plan_hash).decided
    assert w.store.claim_execution(stalled.id, "crashed-worker", timedelta(seconds=30))
    w.clock.advance(monitoring.ORPHAN_AFTER + timedelta(seconds=1))

    def broken(incident):  # noqa: ANN001, ANN202 - say, its environment was removed from the config
        raise KeyError(incident.env)

    w.notifier.find_root = broken  # type: ignore[method-assign]
    assert monitoring.housekeeping(w.svc) == [stalled.id]  # the stalled rollback is still taken over
    assert monitoring.settle_orphans(w.svc) == {orphan: "error"}
