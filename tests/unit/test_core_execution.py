"""Execution on fakes: the lease and its fencing, uncertain outcomes, read-back disagreements,
plan changes, resumption after a crash, and the runbook's advice on failure."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from handlers import approvals
from handlers.code import FRESH_READ
from handlers.execution import execute, fail
from handlers.model import Status
from handlers.ports import ProviderError
from handlers.takeover import resume_stale
from tests.fakes.ports import deployment
from tests.fakes.world import ALICE, CAROL, FakeWorld, fake_world

KINDS = ["code", "switch"]


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path, uncertain_window=5.0)


def _approved(w: FakeWorld, kind: str = "code") -> int:
    incident = w.request(ALICE, kind, name="checkout") if kind == "switch" else w.request(ALICE, kind)
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    return incident.id


def _log(w: FakeWorld, incident_id: int, action: str | None = None) -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in w.store.audit_log(incident_id) if action in (None, e.action)]


def _changed(w: FakeWorld, kind: str) -> bool:
    return w.vercel.production == "dpl_good" if kind == "code" else (w.switches / "checkout").read_text() == "off"


@pytest.mark.parametrize("kind", KINDS)
def test_an_approved_rollback_executes_verifies_and_starts_monitoring(w: FakeWorld, kind: str) -> None:
    incident_id = _approved(w, kind)
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.MONITORING and _changed(w, kind)
    assert done.rolled_back_at is not None and done.verified_at is not None
    assert [j.kind for j in w.store.pending_jobs(incident_id)] == ["monitor"] * 3
    assert "post_stable" in done.checklist and w.notifier.count("verification") == 1
    steps = {s.name: s.status for s in w.store.steps(incident_id)}
    assert set(steps.values()) == {"ok"} and "verify" in steps
    assert w.store.pending_jobs(incident_id)[0].due_at == w.clock.now() + timedelta(minutes=5)


@pytest.mark.parametrize("kind", KINDS)
def test_only_one_executor_holds_the_lease(w: FakeWorld, kind: str) -> None:
    incident_id = _approved(w, kind)
    assert w.store.claim_execution(incident_id, "A", timedelta(seconds=30))
    assert execute(w.svc, incident_id) is None  # B cannot claim while A's lease is live
    assert not _changed(w, kind)
    w.clock.advance(31)
    assert w.store.stale_executions() == [incident_id]
    assert execute(w.svc, incident_id, resume=True).status is Status.MONITORING
    assert not w.store.renew_execution(incident_id, "A", timedelta(seconds=30))  # A is fenced off


@pytest.mark.parametrize("kind", KINDS)
def test_a_fenced_executor_cannot_record_anything(w: FakeWorld, kind: str) -> None:
    incident_id = _approved(w, kind)
    assert w.store.claim_execution(incident_id, "A", timedelta(seconds=30))
    w.clock.advance(31)
    assert w.store.claim_execution(incident_id, "B", timedelta(seconds=30))
    assert not w.store.mark_rolled_back(incident_id, "A", w.clock.now())
    assert w.store.start_monitoring(incident_id, "A", w.clock.now(), [], []) is None
    assert fail(w.svc, incident_id, "stale view", "A").status is Status.EXECUTING
    assert w.notifier.count("failure") == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_stale_lease_is_resumed_by_the_worker_and_gives_up_after_three_tries(w: FakeWorld, kind: str) -> None:
    incident_id = _approved(w, kind)
    for n in range(3):
        assert w.store.claim_execution(incident_id, f"crashed-{n}", timedelta(seconds=30))
        w.store.audit(incident_id, "rollbot", "execute.resume", "ok", {}, w.clock.now())
        w.clock.advance(31)
    assert resume_stale(w.svc) == []
    failed = w.store.get(incident_id)
    assert failed.status is Status.FAILED and "gave up after 3 attempts" in failed.failure
    assert not _changed(w, kind)


def test_a_definite_refusal_is_sent_again_after_the_wait(w: FakeWorld) -> None:
    incident_id = _approved(w)
    w.vercel.script = ["429", "429"]
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert w.vercel.rollbacks == ["dpl_good"] * 3
    assert _log(w, incident_id, "vercel.rollback").count(("vercel.rollback", "refused")) == 2


def test_a_timeout_that_took_effect_is_never_sent_again(w: FakeWorld) -> None:
    incident_id = _approved(w)
    w.vercel.script = ["timeout-applied"]
    done = execute(w.svc, incident_id)
    assert done.status is Status.MONITORING and w.vercel.rollbacks == ["dpl_good"]
    log = _log(w, incident_id, "vercel.rollback")
    assert ("vercel.rollback", "uncertain") in log and ("vercel.rollback", "not_taken") not in log


@pytest.mark.parametrize("uncertain", ["5xx", "timeout-lost"])
def test_an_uncertain_call_is_sent_again_only_after_the_record_shows_it_did_not_take(w: FakeWorld,
                                                                                      uncertain: str) -> None:
    incident_id = _approved(w)
    w.vercel.script = [uncertain]
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert w.vercel.rollbacks == ["dpl_good", "dpl_good"]
    log = _log(w, incident_id, "vercel.rollback")
    assert log.index(("vercel.rollback", "not_taken")) < len(log) - 1 - log[::-1].index(("vercel.rollback", "attempt"))
    assert sum(w.time.slept) >= 5.0  # it watched Vercel's record for the whole window first


def test_uncertain_every_time_gives_up_after_four_sends(w: FakeWorld) -> None:
    incident_id = _approved(w)
    w.vercel.script = ["5xx"] * 10
    failed = execute(w.svc, incident_id)
    assert failed.status is Status.FAILED and "none of them took effect" in failed.failure
    assert len(w.vercel.rollbacks) == 4
    assert w.notifier.sent["failure"][0][2].startswith("Runbook, code rollback")


def test_a_failed_alias_job_fails_the_rollback_with_the_runbooks_next_step(w: FakeWorld) -> None:
    incident_id = _approved(w)
    w.vercel.script = ["fail-job"]
    failed = execute(w.svc, incident_id)
    assert failed.status is Status.FAILED and "alias job as failed" in failed.failure
    incident, error, advice = w.notifier.sent["failure"][0]
    assert "Promote to Production" in advice and w.store.pending_jobs(incident_id) == []
    assert w.request(ALICE).ref == "RB-2"  # the lock is released


@pytest.mark.parametrize("kind", KINDS)
def test_a_read_back_that_disagrees_fails_the_incident(w: FakeWorld, kind: str) -> None:
    incident_id = _approved(w, kind)
    if kind == "code":
        w.vercel.script = ["phantom"]  # Vercel says succeeded; production stays
    else:
        w.svc.kinds["switch"].directory = w.switches  # the flip happens, then someone turns it back on
        original = w.svc.kinds["switch"].verify

        def flipped_back(plan):  # noqa: ANN001, ANN202
            (w.switches / "checkout").write_text("on")
            return original(plan)

        w.svc.kinds["switch"].verify = flipped_back  # type: ignore[method-assign]
    failed = execute(w.svc, incident_id)
    assert failed.status is Status.FAILED and "read-back" in failed.failure
    assert w.notifier.count("verification") == 0 and w.notifier.count("failure") == 1
    assert ("read_back", "failed") in _log(w, incident_id)


@pytest.mark.parametrize("kind", KINDS)
def test_failing_health_checks_keep_the_incident_monitored_with_a_warning(w: FakeWorld, kind: str) -> None:
    incident_id = _approved(w, kind)
    w.health.healthy = False
    done = execute(w.svc, incident_id)
    assert done.status is Status.MONITORING
    _, result, ok = w.notifier.sent["verification"][0]
    assert result.ok and not ok
    assert ("verify", "unhealthy") in _log(w, incident_id)


def test_production_moved_before_the_first_call_reopens_the_request(w: FakeWorld) -> None:
    incident_id = _approved(w)
    w.vercel.deployments.append(deployment("dpl_hotfix", 1))
    w.vercel.production = "dpl_hotfix"
    reopened = execute(w.svc, incident_id)
    assert reopened.status is Status.PENDING and reopened.plan.change == ("dpl_hotfix", "dpl_bad")
    assert reopened.valid_approvals() == () and w.vercel.rollbacks == []
    assert w.notifier.count("plan_changed") == 1 and [j.kind for j in w.store.pending_jobs(incident_id)] == ["expire"]
    assert approvals.approve(w.svc, CAROL, incident_id, reopened.plan_hash).decided
    assert execute(w.svc, incident_id).status is Status.MONITORING and w.vercel.production == "dpl_bad"


def test_a_plan_that_no_longer_holds_fails_without_a_call(w: FakeWorld) -> None:
    incident_id = _approved(w)
    w.vercel.deployments = [deployment("dpl_bad", 30)]  # no earlier deployment any more
    failed = execute(w.svc, incident_id)
    assert failed.status is Status.FAILED and "no longer holds" in failed.failure and w.vercel.rollbacks == []


def test_unreadable_vercel_at_the_recheck_still_reads_before_any_change(w: FakeWorld) -> None:
    incident_id = _approved(w)
    w.vercel.unreadable = True
    failed = execute(w.svc, incident_id)
    assert failed.status is Status.FAILED and w.vercel.rollbacks == []


def test_a_takeover_after_an_unanswered_attempt_reads_back_before_sending(w: FakeWorld) -> None:
    """The first executor wrote its attempt, sent, and died before the answer; Vercel applied it."""
    incident_id = _approved(w)
    assert w.store.claim_execution(incident_id, "crashed", timedelta(seconds=30))
    w.store.start_step(incident_id, "vercel.rollback", w.clock.now())
    w.store.audit(incident_id, "rollbot", "vercel.rollback", "attempt", {}, w.clock.now())
    w.vercel.production, w.vercel.job = "dpl_good", ("succeeded", "dpl_good", 5000)
    w.clock.advance(31)
    assert execute(w.svc, incident_id, resume=True).status is Status.MONITORING
    assert w.vercel.rollbacks == [] and ("vercel.rollback", "skipped") in _log(w, incident_id)


def test_a_takeover_after_an_unanswered_attempt_that_never_arrived_sends_after_the_window(w: FakeWorld) -> None:
    incident_id = _approved(w)
    assert w.store.claim_execution(incident_id, "crashed", timedelta(seconds=30))
    w.store.start_step(incident_id, "vercel.rollback", w.clock.now())
    w.store.audit(incident_id, "rollbot", "vercel.rollback", "attempt", {}, w.clock.now())
    w.clock.advance(31)
    assert execute(w.svc, incident_id, resume=True).status is Status.MONITORING
    assert w.vercel.rollbacks == ["dpl_good"] and sum(w.time.slept) >= 5.0
    assert ("vercel.rollback", "not_taken") in _log(w, incident_id)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_says_what_the_runbook_advises_on_failure(w: FakeWorld, kind: str) -> None:
    incident_id = _approved(w, kind)
    assert w.store.claim_execution(incident_id, "me", timedelta(seconds=30))
    fail(w.svc, incident_id, "boom", "me")
    assert w.notifier.sent["failure"][0][2] == w.svc.kinds[kind].next_step


def _read_before_send(w: FakeWorld, incident_id: int) -> list[str]:
    return [e.detail["read"] for e in w.store.audit_log(incident_id) if e.action == "vercel.read_alias"]


def test_the_plans_recheck_is_the_read_of_vercel_before_the_send(w: FakeWorld) -> None:
    incident_id = _approved(w)
    before = w.vercel.reads
    assert execute(w.svc, incident_id).status is Status.MONITORING
    # The re-check read the alias and the deployments; the send went out on those, not a third read.
    assert [n - before for n in w.vercel.reads_at_send] == [2]
    assert _read_before_send(w, incident_id) == ["at the re-check"]
    [age] = [e.detail["age_ms"] for e in w.store.audit_log(incident_id) if e.action == "vercel.read_alias"]
    assert 0 <= age <= FRESH_READ * 1000


def test_a_recheck_read_that_is_no_longer_fresh_is_read_again_before_the_send(w: FakeWorld) -> None:
    incident_id = _approved(w)
    listed = w.vercel.production_deployments

    def slow(project: str, limit: int = 20) -> list:  # the alias was read FRESH_READ and more before this
        w.time.now += FRESH_READ + 0.5
        return listed(project, limit)

    w.vercel.production_deployments = slow  # type: ignore[method-assign]
    before = w.vercel.reads
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert [n - before for n in w.vercel.reads_at_send] == [3]
    assert _read_before_send(w, incident_id) == ["now"]


def test_a_resumed_execution_reads_vercel_before_it_sends(w: FakeWorld) -> None:
    incident_id = _approved(w)
    assert w.store.claim_execution(incident_id, "A", timedelta(seconds=30))
    w.store.start_step(incident_id, "vercel.rollback", w.clock.now())  # A started, then died before sending
    w.clock.advance(31)
    assert execute(w.svc, incident_id, resume=True).status is Status.MONITORING
    assert w.vercel.rollbacks == ["dpl_good"] and _read_before_send(w, incident_id) == ["now"]


def test_a_plan_reads_the_alias_and_the_deployments_at_once(w: FakeWorld) -> None:
    both = threading.Barrier(2, timeout=5)  # each read waits for the other: only side by side do both finish
    alias, listed = w.vercel.alias_state, w.vercel.production_deployments

    def meeting(read):  # type: ignore[no-untyped-def]
        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            both.wait()
            return read(*args, **kwargs)
        return wrapped

    w.vercel.alias_state, w.vercel.production_deployments = meeting(alias), meeting(listed)  # type: ignore[method-assign]
    incident = w.request(ALICE, "code")
    assert incident.plan.change == ("dpl_bad", "dpl_good")


@pytest.mark.parametrize("unreadable", ["alias_state", "production_deployments"])
def test_either_read_of_a_plan_failing_fails_the_plan_with_its_error(w: FakeWorld, unreadable: str) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ProviderError(f"Vercel answered 503 on {unreadable}", status=503)

    setattr(w.vercel, unreadable, refuse)
    with pytest.raises(ProviderError, match=unreadable):
        w.svc.kinds["code"].plan("prod", w.svc.policy.environments["prod"], {})


def test_a_takeover_before_any_step_rechecks_and_sends_on_its_own_read(w: FakeWorld) -> None:
    incident_id = _approved(w)
    assert w.store.claim_execution(incident_id, "A", timedelta(seconds=30))  # A died before its first step
    w.clock.advance(31)
    before = w.vercel.reads
    assert execute(w.svc, incident_id, resume=True).status is Status.MONITORING
    assert [n - before for n in w.vercel.reads_at_send] == [2]  # the new executor's own re-check
    assert _read_before_send(w, incident_id) == ["at the re-check"]


def test_a_plan_without_a_thread_to_spare_reads_one_after_the_other(w: FakeWorld,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    plan = w.svc.kinds["code"].plan("prod", w.svc.policy.environments["prod"], {})
    assert plan.change == ("dpl_bad", "dpl_good")


def test_when_both_reads_of_a_plan_fail_the_first_is_raised_and_the_other_logged(
        w: FakeWorld, caplog: pytest.LogCaptureFixture) -> None:
    w.vercel.unreadable = True
    with pytest.raises(ProviderError, match="503"):
        w.svc.kinds["code"].plan("prod", w.svc.policy.environments["prod"], {})
    assert "the other read failed too: ProviderError" in caplog.text
