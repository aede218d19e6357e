"""What the core reports for the metrics (handlers.ports.Telemetry), on fakes: refusals with
their short code, approvals, an execution's outcome and time to rollback against its target,
and every due job's end."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from handlers import approvals
from handlers.execution import execute
from handlers.monitoring import process
from handlers.services import Refused
from handlers.store import FOLLOW_UP_JOB
from tests.fakes.world import ALICE, BOB, CAROL, FakeWorld, fake_world


class Recorded:
    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def refused(self, *args: Any) -> None:
        self.events.append(("refused", args))

    def approved(self, *args: Any) -> None:
        self.events.append(("approved", args))

    def rolled_back(self, *args: Any) -> None:
        self.events.append(("rolled_back", args))

    def job_finished(self, *args: Any) -> None:
        self.events.append(("job_finished", args))

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for kind, args in self.events if kind == name]


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path)


@pytest.fixture
def seen(w: FakeWorld) -> Recorded:
    w.svc.telemetry = recorded = Recorded()
    return recorded


def test_refusals_carry_a_short_code_not_the_message(w: FakeWorld, seen: Recorded) -> None:
    incident = w.request(ALICE)
    for user in (ALICE, BOB):  # the requester; not an approver
        with pytest.raises(Refused):
            approvals.approve(w.svc, user, incident.id, incident.plan_hash)
    with pytest.raises(Refused):
        approvals.approve(w.svc, CAROL, incident.id, "another-plan")
    with pytest.raises(Refused):
        approvals.cancel(w.svc, BOB, incident.id)
    with pytest.raises(Refused):
        approvals.approve(w.svc, CAROL, incident.id + 7, incident.plan_hash)
    assert seen.of("refused") == [("approve", "self_approval"), ("approve", "not_an_approver"),
                                  ("approve", "plan_changed"), ("cancel", "not_requester"),
                                  ("approve", "unknown_incident")]
    assert [e.detail["code"] for e in w.store.entries if e.outcome == "refused"] == [
        code for _, code in seen.of("refused")]  # the audit log keeps the same code


def test_an_approval_and_the_rollback_it_decides(w: FakeWorld, seen: Recorded) -> None:
    incident = w.request(ALICE)
    w.clock.advance(timedelta(seconds=90))
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    assert seen.of("approved") == [("code", "prod", True)]
    done = execute(w.svc, incident.id)
    assert done is not None
    (kind, env, outcome, seconds, target), = seen.of("rolled_back")
    assert (kind, env, outcome, target) == ("code", "prod", "verified", 300.0)  # the code kind's 5-minute target
    assert seconds == (done.rolled_back_at - incident.created_at).total_seconds() >= 90


def test_a_failed_rollback_is_reported_failed(w: FakeWorld, seen: Recorded) -> None:
    incident = w.request(ALICE)
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    w.vercel.script = ["fail-job"]
    execute(w.svc, incident.id)
    assert [args[2] for args in seen.of("rolled_back")] == ["failed"]


def test_every_due_job_reports_how_it_ended(w: FakeWorld, seen: Recorded) -> None:
    w.request(ALICE)
    w.clock.advance(timedelta(hours=1))
    for job in w.store.claim_due(w.clock.now(), "w1"):
        process(w.svc, job)
    assert seen.of("job_finished") == [("expire", "done")]


def test_a_job_that_fails_is_reported_as_a_retry(w: FakeWorld, seen: Recorded) -> None:
    incident = w.request(ALICE)
    w.store.schedule(incident.id, FOLLOW_UP_JOB, w.clock.now(), {})  # no follow-up named: it raises
    for job in w.store.claim_due(w.clock.now(), "w1"):
        assert process(w.svc, job) == "retry"
    assert seen.of("job_finished") == [(FOLLOW_UP_JOB, "retry")]
