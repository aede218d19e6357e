"""The core's request and approval rules, on fakes: roles, four eyes, N distinct approvers, plan
binding, expiry, deny and cancel. Every rule for the code kind and for the test suite's kind."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from handlers import approvals
from handlers.model import Status
from handlers.services import Refused
from tests.fakes.world import ALICE, BOB, CAROL, DAN, EVE, LEADS, FakeWorld, fake_world

KINDS = ["code", "switch"]


def _request(w: FakeWorld, kind: str, user: str = ALICE):
    return w.request(user, kind, name="checkout") if kind == "switch" else w.request(user, kind)


def _refusals(w: FakeWorld, action: str) -> list[str]:
    return [e.detail.get("reason", "") for e in w.store.entries if e.action == action and e.outcome == "refused"]


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_request_becomes_a_pending_incident_with_its_root_message_and_the_team_told(w: FakeWorld, kind: str) -> None:
    incident = _request(w, kind)
    assert incident.status is Status.PENDING and incident.ref == "RB-1" and incident.kind == kind
    assert incident.channel == "C01INCIDENTS" and incident.root_ts
    assert w.notifier.count("root") == 1 and w.notifier.sent["notify"][0][1] == ("S01ONCALL",)
    assert incident.checklist["notify"] is True and incident.checklist["type"] is True
    assert [j.kind for j in w.store.pending_jobs(incident.id)] == ["expire"]


@pytest.mark.reliability("attack", "Authorisation matrix: who may request, approve and deny, by role, for every kind")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("user, allowed", [(ALICE, True), (BOB, True), (CAROL, True), (DAN, False), (EVE, False)])
def test_only_requesters_may_request(w: FakeWorld, kind: str, user: str, allowed: bool) -> None:
    if allowed:
        assert _request(w, kind, user).status is Status.PENDING
        return
    with pytest.raises(Refused, match="cannot request rollbacks on \\*prod\\*"):
        _request(w, kind, user)
    assert w.store.rows == {} and _refusals(w, f"request.{kind}")


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_request_of_the_same_kind_is_refused_naming_the_first(w: FakeWorld, kind: str) -> None:
    first = _request(w, kind)
    with pytest.raises(Refused, match=f"{first.ref} .* is still pending"):
        _request(w, kind, BOB)
    assert len(w.store.rows) == 1


def test_different_kinds_do_not_block_each_other(w: FakeWorld) -> None:
    assert _request(w, "code").ref == "RB-1" and _request(w, "switch").ref == "RB-2"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("approver, why", [
    (ALICE, "four eyes"),  # the requester
    (BOB, "you hold `engineer`"),  # not an approver role
    (DAN, "you hold `dba`"),
    (EVE, "you hold no role"),
])
@pytest.mark.reliability("attack", "Authorisation matrix: who may request, approve and deny, by role, for every kind")
def test_approvals_that_do_not_count_say_why_and_change_nothing(w: FakeWorld, kind: str, approver: str,
                                                               why: str) -> None:
    incident = _request(w, kind)
    with pytest.raises(Refused, match=why):
        approvals.approve(w.svc, approver, incident.id, incident.plan_hash)
    assert w.store.get(incident.id).status is Status.PENDING and w.store.approvals == []
    assert _refusals(w, "approve")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("approver", [CAROL, *LEADS[:2]])
def test_a_lead_directly_or_through_a_group_decides(w: FakeWorld, kind: str, approver: str) -> None:
    incident = _request(w, kind)
    outcome = approvals.approve(w.svc, approver, incident.id, incident.plan_hash)
    assert outcome.recorded and outcome.decided and outcome.incident.status is Status.EXECUTING
    assert outcome.incident.decided_by == approver
    assert [j.kind for j in w.store.pending_jobs(incident.id)] == ["execute"]  # expiry cancelled, execution queued
    assert w.store.wakeups >= 2  # the worker is woken when the decision commits


def test_self_approval_counts_where_the_policy_allows_it(tmp_path: Path) -> None:
    w = fake_world(tmp_path, self_approval=True)
    incident = w.request(CAROL)
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided


def test_without_the_user_groups_the_check_cannot_be_made_and_says_so(w: FakeWorld) -> None:
    incident = _request(w, "code")
    w.directory.down = True
    with pytest.raises(Refused, match="cannot read the Slack user groups"):
        approvals.approve(w.svc, LEADS[0], incident.id, incident.plan_hash)
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided  # named directly: no lookup


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("needed", [2, 3])
def test_n_distinct_approvers_are_needed(tmp_path: Path, kind: str, needed: int) -> None:
    w = fake_world(tmp_path, approvals=needed)
    incident = _request(w, kind)
    for n, approver in enumerate([CAROL, *LEADS][:needed], start=1):
        outcome = approvals.approve(w.svc, approver, incident.id, incident.plan_hash)
        assert outcome.decided is (n == needed)
        if n < needed:
            with pytest.raises(Refused, match="already approved"):
                approvals.approve(w.svc, approver, incident.id, incident.plan_hash)
    assert len(w.store.get(incident.id).valid_approvals()) == needed


@pytest.mark.parametrize("kind", KINDS)
def test_many_simultaneous_approvals_decide_exactly_once(tmp_path: Path, kind: str) -> None:
    w = fake_world(tmp_path, approvals=2)
    incident = _request(w, kind)

    def click(user: str) -> bool:
        try:
            return approvals.approve(w.svc, user, incident.id, incident.plan_hash).decided
        except Refused:
            return False

    with ThreadPoolExecutor(max_workers=6) as pool:
        decided = list(pool.map(click, [CAROL, *LEADS] * 3))
    assert decided.count(True) == 1
    assert [j.kind for j in w.store.pending_jobs(incident.id)] == ["execute"]


@pytest.mark.reliability("attack", "An approval for a plan that changed since it was drawn")
@pytest.mark.parametrize("kind", KINDS)
def test_an_approval_is_bound_to_the_plan_it_was_drawn_for(w: FakeWorld, kind: str) -> None:
    incident = _request(w, kind)
    with pytest.raises(Refused, match="changed after this button was drawn"):
        approvals.approve(w.svc, CAROL, incident.id, "0" * 16)
    assert w.store.get(incident.id).status is Status.PENDING


@pytest.mark.reliability("attack", "An approval after the approval window")
@pytest.mark.parametrize("kind", KINDS)
def test_an_approval_after_the_timeout_is_refused_and_expires_the_request(w: FakeWorld, kind: str) -> None:
    incident = _request(w, kind)
    w.clock.advance(timedelta(minutes=30))
    with pytest.raises(Refused, match="already expired"):
        approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    assert w.store.get(incident.id).status is Status.EXPIRED and w.notifier.count("closed") == 1
    assert not w.store.approve(incident.id, CAROL, incident.plan_hash, w.clock.now()).recorded


@pytest.mark.parametrize("kind", KINDS)
def test_expiry_is_a_no_op_once_decided(w: FakeWorld, kind: str) -> None:
    incident = _request(w, kind)
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    assert approvals.expire(w.svc, incident.id) is None
    assert w.store.get(incident.id).status is Status.EXECUTING


@pytest.mark.reliability("attack", "Authorisation matrix: who may request, approve and deny, by role, for every kind")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("user, allowed", [(ALICE, True), (CAROL, True), (LEADS[0], True), (BOB, False), (DAN, False)])
def test_deny_needs_the_requester_or_an_approver_and_a_reason(w: FakeWorld, kind: str, user: str, allowed: bool) -> None:
    incident = _request(w, kind)
    with pytest.raises(Refused, match="needs a reason" if allowed else "can deny"):
        approvals.deny(w.svc, user, incident.id, "  ")
    if allowed:
        denied = approvals.deny(w.svc, user, incident.id, "<!here> not now")
        assert denied.status is Status.DENIED and denied.decision_note == "<!here> not now"
        assert w.store.pending_jobs(incident.id) == [] and w.notifier.count("closed") == 1
        with pytest.raises(Refused, match="already denied"):
            approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)


@pytest.mark.parametrize("kind", KINDS)
def test_only_the_requester_cancels(w: FakeWorld, kind: str) -> None:
    incident = _request(w, kind)
    with pytest.raises(Refused, match="can cancel it"):
        approvals.cancel(w.svc, CAROL, incident.id)
    assert approvals.cancel(w.svc, ALICE, incident.id).status is Status.CANCELLED
    with pytest.raises(Refused, match="no longer pending"):
        approvals.cancel(w.svc, ALICE, incident.id)
    assert _request(w, kind, BOB).ref == "RB-2"  # the lock is released


def test_an_unknown_incident_is_refused_by_number(w: FakeWorld) -> None:
    for action in (lambda: approvals.approve(w.svc, CAROL, 99, "x"), lambda: approvals.deny(w.svc, CAROL, 99, "r"),
                   lambda: approvals.cancel(w.svc, CAROL, 99)):
        with pytest.raises(Refused, match="RB-99 does not exist"):
            action()


def test_a_kind_that_is_not_registered_is_refused_and_audited(w: FakeWorld) -> None:
    with pytest.raises(Refused, match="warp rollbacks are not available in this version"):
        w.request(ALICE, "warp", target="engines")
    assert _refusals(w, "request.warp")


def test_an_environment_without_the_kinds_settings_is_refused(w: FakeWorld) -> None:
    from handlers.commands import Rollback
    from handlers.requests import request_rollback

    with pytest.raises(Refused, match="no `vercel_project` configured"):
        request_rollback(w.svc, ALICE, Rollback("code", "staging", "why"))
