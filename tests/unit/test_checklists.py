"""Checklists: items an environment requires before an approval counts, what the bot ticks
itself, and who ticked what in the summary."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from handlers import approvals
from handlers.execution import execute
from handlers.model import Status
from handlers.monitoring import process
from handlers.services import Refused
from handlers.summary import build_summary
from tests.fakes.world import ALICE, CAROL, FakeWorld, fake_world


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path, require=("identify_root_cause",))


def test_an_approval_does_not_count_until_the_required_items_are_ticked(w: FakeWorld) -> None:
    incident = w.request(ALICE)
    with pytest.raises(Refused, match="prod\\* requires “Identify root cause” to be ticked on RB-1 before an approval"):
        approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    assert w.store.get(incident.id).approvals == ()
    assert [e.outcome for e in w.store.audit_log(incident.id) if e.action == "approve"] == ["refused"]
    w.store.set_checklist(incident.id, "root_cause", True)
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided


def test_an_item_unticked_between_the_check_and_the_write_still_stops_the_approval(w: FakeWorld) -> None:
    incident = w.request(ALICE)
    w.store.set_checklist(incident.id, "root_cause", True)
    real = w.store.approve

    def unticked_meanwhile(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the real store call, a moment later
        w.store.set_checklist(incident.id, "root_cause", False)
        return real(*args, **kwargs)

    w.store.approve = unticked_meanwhile  # type: ignore[method-assign]
    with pytest.raises(Refused, match="requires “Identify root cause”"):
        approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)


def test_an_unknown_item_in_the_policy_is_a_clear_config_error(tmp_path: Path) -> None:
    from bot.config_file import ConfigError

    with pytest.raises(ConfigError, match="'find_culprit' is not a pre-rollback checklist item \\(one of: "
                                          "identify_root_cause, determine_rollback_type"):
        fake_world(tmp_path, require=("find_culprit",))


def test_the_bot_ticks_what_it_did_and_the_summary_says_who_ticked_what(w: FakeWorld) -> None:
    incident = w.request(ALICE)
    w.store.set_checklist(incident.id, "root_cause", True)
    w.svc.audit(incident.id, CAROL, "checklist", "ok", item="root_cause", checked=True)
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    assert execute(w.svc, incident.id) is not None
    verified = w.store.get(incident.id)
    assert verified.checklist["known_good"] is True  # read back as planned, and healthy
    assert verified.checklist["post_stable"] is False
    for job in sorted(w.store.pending_jobs(incident.id), key=lambda j: j.due_at):
        w.clock.advance(job.due_at - w.clock.now() + timedelta(seconds=1))
        process(w.svc, job)
    assert w.store.get(incident.id).checklist["post_stable"] is True  # every monitoring check passed
    final = w.store.get(incident.id)
    summary = build_summary(final, w.svc.kinds["code"], w.store.steps(incident.id), w.store.audit_log(incident.id))
    by = {c.item: c.by for c in summary.checklist}
    assert by["Identify root cause"] == CAROL and by["Verify system is stable"] == "rollbot"
    assert by["Verify rollback target is known good state"] == "rollbot" and by["Monitor error rates"] is None


def test_a_failing_health_check_while_monitoring_leaves_stable_unticked(w: FakeWorld) -> None:
    incident = w.request(ALICE)
    w.store.set_checklist(incident.id, "root_cause", True)
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    execute(w.svc, incident.id)
    w.health.healthy = False
    for job in sorted(w.store.pending_jobs(incident.id), key=lambda j: j.due_at):
        w.clock.advance(job.due_at - w.clock.now() + timedelta(seconds=1))
        process(w.svc, job)
    current = w.store.get(incident.id)
    assert current.status is Status.MONITORING and current.checklist["post_stable"] is False
