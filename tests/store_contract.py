"""The store's contract: one set of tests that the in-memory fake (tests/unit) and the Postgres
store (tests/integration) must both pass, so the fake the unit tier relies on cannot drift.

A subclass provides the ``store`` fixture and ``expire_leases(store)`` (on the store's clock).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers.code import CodePlan
from handlers.model import Resolution, Status
from handlers.store import (
    MESSAGE_IN_FLIGHT,
    STEP_STALE,
    DueJob,
    IncidentStore,
    LockHeld,
    MessageRecord,
    NewIncident,
    NewJob,
    StandingRecord,
)
from tests.fakes.ports import deployment

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)


def plan(env: str = "prod", to: str = "dpl_good") -> CodePlan:
    return CodePlan(env=env, project="prj", from_deployment=deployment("dpl_bad", 30),
                    to_deployment=deployment(to, 120))


def new(env: str = "prod", needed: int = 1, **changes: Any) -> NewIncident:
    values = dict(kind="code", env=env, requester="U01ALICE", reason="why", plan=plan(env), approvals_needed=needed,
                  checklist={"notify": False, "type": True}, created_at=T0, expires_at=T0 + timedelta(minutes=30))
    values.update(changes)
    return NewIncident(**values)


class StoreContract:
    def expire_leases(self, store: IncidentStore) -> None:
        raise NotImplementedError

    def _decided(self, store: IncidentStore, needed: int = 1) -> int:
        incident = store.create_incident(new(needed=needed))
        assert store.approve(incident.id, "U01CAROL", incident.plan_hash, T0).decided
        return incident.id

    # -- incidents ---------------------------------------------------------------------------

    def test_create_and_read_back_a_typed_plan(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        got = store.get(incident.id)
        assert got is not None and got.status is Status.PENDING and isinstance(got.plan, CodePlan)
        assert got.plan == plan() and got.plan_hash == plan().hash and got.checklist == {"notify": False, "type": True}
        assert [j.kind for j in store.pending_jobs(incident.id)] == ["expire"]
        assert store.get(incident.id + 100) is None

    def test_one_incident_per_request_job(self, store: IncidentStore) -> None:
        assert store.incident_for_request(41) is None
        first = store.create_incident(new(request_job=41))
        assert store.incident_for_request(41) == first and store.incident_for_request(42) is None
        assert store.transition(first.id, [Status.PENDING], Status.CANCELLED) is not None  # the lock is free
        with pytest.raises(Exception):  # noqa: B017, PT011 - Postgres: the unique index; the fake: its check
            store.create_incident(new(request_job=41))
        assert store.create_incident(new(request_job=42)).id != first.id
        assert store.incident_count() == 2

    def test_one_locking_incident_per_environment_and_kind(self, store: IncidentStore) -> None:
        first = store.create_incident(new())
        with pytest.raises(LockHeld) as held:
            store.create_incident(new())
        assert held.value.incident.id == first.id
        assert store.create_incident(new(env="staging")).id != first.id
        assert store.transition(first.id, [Status.PENDING], Status.CANCELLED) is not None
        assert store.create_incident(new()).status is Status.PENDING

    def test_a_combined_incident_holds_the_lock_of_each_part(self, store: IncidentStore) -> None:
        combined = store.create_incident(new(kind="code+env", issue="Security", severity="Critical"))
        assert (combined.issue, combined.severity) == ("Security", "Critical")
        for kind in ("code", "env", "env+flag"):
            with pytest.raises(LockHeld) as held:
                store.create_incident(new(kind=kind))
            assert held.value.incident.id == combined.id
        assert store.create_incident(new(kind="flag")).issue is None  # another lock
        assert store.transition(combined.id, [Status.PENDING], Status.CANCELLED) is not None
        code = store.create_incident(new(kind="code"))
        with pytest.raises(LockHeld) as held:
            store.create_incident(new(kind="code+env"))
        assert held.value.incident.id == code.id

    def test_a_combined_and_a_single_request_racing_never_both_win(self, store: IncidentStore) -> None:
        def create(kind: str) -> tuple[str, int] | None:
            try:
                return kind, store.create_incident(new(kind=kind)).id
            except LockHeld:
                return None

        for _round in range(8):
            with ThreadPoolExecutor(max_workers=3) as pool:
                won = [w for w in pool.map(create, ["code+env", "env", "code"]) if w is not None]
            kinds = sorted(kind for kind, _ in won)
            assert kinds in (["code+env"], ["code", "env"]), kinds  # code and env do not exclude each other
            for _, incident_id in won:
                assert store.transition(incident_id, [Status.PENDING], Status.CANCELLED) is not None

    def test_transitions_are_conditional(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        assert store.transition(incident.id, [Status.EXECUTING], Status.FAILED) is None
        denied = store.transition(incident.id, [Status.PENDING], Status.DENIED, decided_by="U01CAROL",
                                  decision_note="no")
        assert denied is not None and denied.status is Status.DENIED and denied.decision_note == "no"
        with pytest.raises(ValueError):
            store.transition(incident.id, [Status.DENIED], Status.FAILED, plan_hash="x")

    def test_checklist_items_tick_only_when_present(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        assert store.set_checklist(incident.id, "notify", True).checklist["notify"] is True
        assert store.set_checklist(incident.id, "unknown", True) is None
        store.add_checklist(incident.id, ["post_stable", "notify"])
        assert store.get(incident.id).checklist == {"notify": True, "type": True, "post_stable": False}

    def test_refs_recent_open_and_orphans(self, store: IncidentStore) -> None:
        a = store.create_incident(new())
        b = store.create_incident(new(env="staging"))
        store.set_refs(a.id, channel="C1", root_ts="1.1")
        assert store.get(a.id).channel == "C1" and store.orphaned_requests(T0 + timedelta(minutes=1)) == [b.id]
        assert [i.id for i in store.recent(10)] == [b.id, a.id] and [i.id for i in store.recent(10, "prod")] == [a.id]
        assert [i.id for i in store.open_incidents()] == [a.id, b.id]

    def test_open_incidents_come_back_whole_with_their_own_approvals(self, store: IncidentStore) -> None:
        a = store.create_incident(new(needed=3))
        b = store.create_incident(new(env="staging", needed=3))
        store.approve(a.id, "U1", a.plan_hash, T0)
        store.approve(b.id, "U2", b.plan_hash, T0 + timedelta(seconds=1))
        store.approve(a.id, "U3", a.plan_hash, T0 + timedelta(seconds=2))
        listed = store.open_incidents()
        assert listed == [store.get(a.id), store.get(b.id)]
        assert [[v.approver for v in i.approvals] for i in listed] == [["U1", "U3"], ["U2"]]

    def test_incidents_are_counted_in_all_and_per_environment(self, store: IncidentStore) -> None:
        assert store.incident_count() == 0
        for env in ("prod", "staging", "prod"):
            made = store.create_incident(new(env=env))
            store.transition(made.id, [Status.PENDING], Status.CANCELLED)  # frees the lock for the next
        assert (store.incident_count(), store.incident_count("prod"), store.incident_count("nowhere")) == (3, 2, 0)

    # -- approvals ---------------------------------------------------------------------------

    def test_an_approval_counts_once_per_approver_and_plan(self, store: IncidentStore) -> None:
        incident = store.create_incident(new(needed=2))
        first = store.approve(incident.id, "U1", incident.plan_hash, T0)
        assert first.recorded and not first.decided
        assert not store.approve(incident.id, "U1", incident.plan_hash, T0).recorded
        assert not store.approve(incident.id, "U2", "another-plan", T0).recorded
        second = store.approve(incident.id, "U2", incident.plan_hash, T0)
        assert second.decided and second.incident.status is Status.EXECUTING and second.incident.decided_by == "U2"
        assert [j.kind for j in store.pending_jobs(incident.id)] == ["execute"]
        assert [(e.action, e.outcome, e.actor, e.detail) for e in store.audit_log(incident.id)] == [
            ("approve", "ok", "U1", {"plan_hash": incident.plan_hash, "count": 1, "needed": 2}),
            ("approve", "ok", "U2", {"plan_hash": incident.plan_hash, "count": 2, "needed": 2}),
            ("approved", "ok", "rollbot", {"approvers": ["U1", "U2"]})]

    def test_the_announce_job_is_queued_with_the_approval_and_only_with_it(self, store: IncidentStore) -> None:
        incident = store.create_incident(new(needed=2))
        announce = NewJob("announce", T0, {"user": "U1", "channel": "C1"})
        first = store.approve(incident.id, "U1", incident.plan_hash, T0, announce=announce)
        again = store.approve(incident.id, "U1", incident.plan_hash, T0, announce=announce)  # not recorded
        last = store.approve(incident.id, "U2", incident.plan_hash, T0,
                             announce=NewJob("announce", T0, {"user": "U2", "channel": "C1"}))
        assert first.recorded and not again.recorded and last.decided
        assert last.incident.status is Status.EXECUTING and [a.approver for a in last.incident.approvals] == ["U1", "U2"]
        jobs = [(j.kind, j.payload) for j in store.pending_jobs(incident.id) if j.kind in ("announce", "execute")]
        assert sorted(jobs, key=str) == sorted([
            ("announce", {"user": "U1", "channel": "C1", "decided": False}),
            ("announce", {"user": "U2", "channel": "C1", "decided": True}),
            ("execute", {"plan_hash": incident.plan_hash})], key=str)

    def test_a_claimed_job_names_its_incidents_kind_and_environment(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        store.schedule(incident.id, "monitor", T0, {"index": 1, "total": 3})
        store.schedule(None, "request", T0, {})
        jobs = {j.kind: j for j in store.claim_due(T0 + timedelta(seconds=1), "w1")}
        assert (jobs["monitor"].incident_kind, jobs["monitor"].incident_env) == (incident.kind, incident.env)
        assert (jobs["request"].incident_kind, jobs["request"].incident_env) == (None, None)

    def test_executions_are_claimed_before_anything_due_earlier(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        store.schedule(incident.id, "monitor", T0, {"index": 1, "total": 3})
        store.schedule(None, "request", T0 + timedelta(seconds=1), {})
        store.schedule(incident.id, "execute", T0 + timedelta(seconds=2), {"plan_hash": incident.plan_hash})
        first = store.claim_due(T0 + timedelta(seconds=3), "w1", limit=1)
        rest = store.claim_due(T0 + timedelta(seconds=3), "w1", limit=10)
        assert [j.kind for j in first] == ["execute"]
        assert [j.kind for j in rest if j.kind in ("monitor", "request")] == ["monitor", "request"]

    def test_executions_can_be_claimed_with_a_limit_of_their_own(self, store: IncidentStore) -> None:
        incidents = [store.create_incident(new(env=env)) for env in ("prod", "staging", "dev")]
        store.schedule(incidents[0].id, "monitor", T0, {"index": 1, "total": 3})
        store.schedule(None, "request", T0 + timedelta(seconds=1), {})
        for n, incident in enumerate(incidents):
            store.schedule(incident.id, "execute", T0 + timedelta(seconds=2 + n), {"plan_hash": incident.plan_hash})
        now = T0 + timedelta(seconds=10)
        first = store.claim_due(now, "w1", limit=1, executions=2)
        assert [(j.kind, j.incident_id) for j in first] == [
            ("execute", incidents[0].id), ("execute", incidents[1].id), ("monitor", incidents[0].id)]
        assert [(j.kind, j.incident_id) for j in store.claim_due(now, "w1", limit=0, executions=5)] == [
            ("execute", incidents[2].id)]
        assert [j.kind for j in store.claim_due(now, "w1", limit=5, executions=0)] == ["request"]

    def test_an_approval_of_an_unknown_incident_is_a_key_error_and_writes_nothing(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        with pytest.raises(KeyError):
            store.approve(incident.id + 1000, "U1", incident.plan_hash, T0,
                          announce=NewJob("announce", T0, {"user": "U1", "channel": "C1"}))
        assert store.pending_jobs(incident.id + 1000) == [] and store.audit_log(incident.id + 1000) == []

    def test_no_approval_after_the_deadline(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        late = store.approve(incident.id, "U1", incident.plan_hash, T0 + timedelta(minutes=30))
        assert not late.recorded and late.incident.status is Status.PENDING

    def test_concurrent_approvals_decide_exactly_once(self, store: IncidentStore) -> None:
        incident = store.create_incident(new(needed=2))
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(lambda u: store.approve(incident.id, u, incident.plan_hash, T0),
                                     [f"U{n}" for n in range(8)]))
        assert sum(o.decided for o in outcomes) == 1 and sum(o.recorded for o in outcomes) >= 2

    def test_reopen_voids_the_approvals_for_the_lease_holder_only(self, store: IncidentStore) -> None:
        incident_id = self._decided(store)
        old = store.get(incident_id)
        fresh = plan(to="dpl_older")
        assert store.claim_execution(incident_id, "A", LEASE)
        assert store.reopen(incident_id, "B", old.plan_hash, fresh, T0 + timedelta(minutes=30)) is None
        reopened = store.reopen(incident_id, "A", old.plan_hash, fresh, T0 + timedelta(minutes=30))
        assert reopened.status is Status.PENDING and reopened.plan_hash == fresh.hash
        assert reopened.valid_approvals() == () and len(reopened.approvals) == 1 and reopened.decided_by is None
        assert [j.kind for j in store.pending_jobs(incident_id)] == ["expire"]
        assert not store.renew_execution(incident_id, "A", LEASE)

    # -- executions --------------------------------------------------------------------------

    def test_the_lease_is_taken_once_renewed_by_its_holder_and_taken_over_when_it_runs_out(
            self, store: IncidentStore) -> None:
        incident_id = self._decided(store)
        assert store.stale_executions() == []  # never claimed: its execute job is due
        assert store.claim_execution(incident_id, "A", LEASE)
        assert store.pending_jobs(incident_id) == []  # the execute job is moot now
        assert not store.claim_execution(incident_id, "B", LEASE)
        assert store.renew_execution(incident_id, "A", LEASE) and not store.renew_execution(incident_id, "B", LEASE)
        self.expire_leases(store)
        assert store.stale_executions() == [incident_id]
        assert store.claim_execution(incident_id, "B", LEASE)
        assert not store.renew_execution(incident_id, "A", LEASE)
        assert not store.mark_rolled_back(incident_id, "A", T0) and store.mark_rolled_back(incident_id, "B", T0)
        assert store.transition(incident_id, [Status.EXECUTING], Status.FAILED, owner="A") is None

    def test_monitoring_starts_with_its_reminders_for_the_lease_holder(self, store: IncidentStore) -> None:
        incident_id = self._decided(store)
        assert store.claim_execution(incident_id, "A", LEASE)
        jobs = [NewJob("monitor", T0 + timedelta(minutes=m), {"index": i, "total": 2})
                for i, m in ((1, 5), (2, 10))]
        assert store.start_monitoring(incident_id, "B", T0, ["post_stable"], jobs) is None
        monitored = store.start_monitoring(incident_id, "A", T0, ["post_stable"], jobs)
        assert monitored.status is Status.MONITORING and monitored.checklist["post_stable"] is False
        assert [j.payload["index"] for j in store.pending_jobs(incident_id)] == [1, 2]
        store.mark_rolled_back(incident_id, "A", T0)  # not executing any more: no effect
        assert store.last_rolled_back() is None

    def test_the_last_rollback_and_the_last_drill_are_told_apart(self, store: IncidentStore) -> None:
        real = store.create_incident(new())
        drill = store.create_incident(new(env="staging", drill=True))
        for incident, at in ((real, T0), (drill, T0 + timedelta(minutes=5))):
            assert store.approve(incident.id, "U01CAROL", incident.plan_hash, at).decided
            assert store.claim_execution(incident.id, "A", LEASE)
            assert store.mark_rolled_back(incident.id, "A", at)
        assert store.get(drill.id).drill and not store.get(real.id).drill
        assert store.last_rolled_back().id == real.id and store.last_rolled_back(drill=True).id == drill.id

    # -- steps, audit, jobs --------------------------------------------------------------------

    def test_a_step_starts_once_and_restarts_only_when_it_did_not_end_well(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        assert store.start_step(incident.id, "s", T0) and not store.start_step(incident.id, "s", T0)
        assert not store.restart_step(incident.id, "s", T0)  # running, and not for long
        store.finish_step(incident.id, "s", "failed", "boom", T0)
        assert store.restart_step(incident.id, "s", T0 + timedelta(seconds=1))
        store.finish_step(incident.id, "s", "uncertain", "timeout", T0)
        assert store.restart_step(incident.id, "s", T0 + timedelta(seconds=2))
        assert not store.restart_step(incident.id, "s", T0 + STEP_STALE)  # its runner may still be at it
        assert store.restart_step(incident.id, "s", T0 + STEP_STALE + timedelta(seconds=3))  # its runner died
        store.finish_step(incident.id, "s", "ok", "done", T0 + timedelta(seconds=2))
        assert not store.restart_step(incident.id, "s", T0 + timedelta(hours=1))
        [step] = store.steps(incident.id)
        assert (step.status, step.detail) == ("ok", "done")

    def test_an_incident_and_its_steps_are_read_together(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        other = store.create_incident(new(env="staging"))
        assert store.approve(incident.id, "U01CAROL", incident.plan_hash, T0).decided
        store.start_step(incident.id, "b", T0 + timedelta(seconds=1))
        store.start_step(incident.id, "a", T0 + timedelta(seconds=1))
        store.start_step(other.id, "c", T0)
        store.finish_step(incident.id, "b", "ok", "done", T0 + timedelta(seconds=2))
        found, steps = store.incident_with_steps(incident.id)
        assert found == store.get(incident.id) and found.approvals
        assert steps == store.steps(incident.id) and [(s.name, s.status) for s in steps] == [("a", "running"),
                                                                                             ("b", "ok")]
        assert store.incident_with_steps(other.id)[1] == store.steps(other.id)
        assert store.incident_with_steps(incident.id + other.id + 100) is None

    def test_an_approval_does_not_count_while_a_required_item_is_unticked(self, store: IncidentStore) -> None:
        incident = store.create_incident(new(checklist={"root_cause": False, "type": True}))
        refused = store.approve(incident.id, "U01CAROL", incident.plan_hash, T0, required=["root_cause"])
        assert not refused.recorded and not refused.decided and refused.incident.approvals == ()
        store.set_checklist(incident.id, "root_cause", True)
        assert store.approve(incident.id, "U01CAROL", incident.plan_hash, T0, required=["root_cause"]).decided

    def test_a_running_step_takes_notes_and_a_finished_one_keeps_its_outcome(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        store.start_step(incident.id, "backup", T0)
        store.note_step(incident.id, "backup", "12 MB written")
        assert [(s.status, s.detail) for s in store.steps(incident.id)] == [("running", "12 MB written")]
        store.finish_step(incident.id, "backup", "ok", "B-1: 40 MB", T0)
        store.note_step(incident.id, "backup", "late note from a slow thread")
        store.note_step(incident.id, "nothing", "no such step")
        assert [(s.status, s.detail) for s in store.steps(incident.id)] == [("ok", "B-1: 40 MB")]

    def test_the_message_ledger_says_new_then_busy_then_doubt_then_where(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        assert store.begin_message(incident.id, "root", T0) == MessageRecord("new", since=T0)
        assert store.begin_message(incident.id, "root", T0 + timedelta(seconds=5)).state == "busy"  # in flight
        later = T0 + MESSAGE_IN_FLIGHT + timedelta(seconds=1)
        assert store.begin_message(incident.id, "root", later) == MessageRecord("doubt", since=T0)  # its poster died
        assert store.begin_message(incident.id, "root", later).state == "busy"  # now this caller settles it
        store.message_unsettled(incident.id, "root")  # it could not: Slack cannot be read
        assert store.begin_message(incident.id, "root", later).state == "doubt"  # at once, nobody is on it
        store.message_posted(incident.id, "root", "1700000000.000100")
        assert store.begin_message(incident.id, "root", T0) == MessageRecord("posted", "1700000000.000100", T0)
        store.message_not_posted(incident.id, "root")  # too late: it was posted
        store.message_unsettled(incident.id, "root")
        assert store.begin_message(incident.id, "root", T0).state == "posted"
        assert store.begin_message(incident.id, "monitor.1", T0).state == "new"
        store.message_not_posted(incident.id, "monitor.1")  # refused: the next try starts afresh
        assert store.begin_message(incident.id, "monitor.1", T0).state == "new"
        store.message_posted(incident.id, "summary", "1700000000.000200")  # recorded even with no attempt row
        assert store.begin_message(incident.id, "summary", T0).ts == "1700000000.000200"
        other = store.create_incident(new(env="staging"))
        assert store.begin_message(other.id, "root", T0).state == "new"  # keys are per incident

    def test_the_standing_ledger_numbers_each_series_and_claims_like_the_message_ledger(
            self, store: IncidentStore) -> None:
        assert store.last_standing("drill") is None
        assert store.begin_standing("drill", 1, T0) == MessageRecord("new", since=T0)
        assert store.last_standing("drill") == StandingRecord(1, "posting", T0)
        assert store.begin_standing("drill", 1, T0 + timedelta(seconds=5)).state == "busy"  # in flight
        later = T0 + MESSAGE_IN_FLIGHT + timedelta(seconds=1)
        assert store.begin_standing("drill", 1, later) == MessageRecord("doubt", since=T0)  # its poster died
        store.standing_unsettled("drill", 1)
        assert store.begin_standing("drill", 1, later).state == "doubt"  # nobody is on it
        store.standing_posted("drill", 1, "1700000000.000100", later)
        assert store.begin_standing("drill", 1, later) == MessageRecord("posted", "1700000000.000100", T0)
        store.standing_not_posted("drill", 1)  # too late: it was posted
        assert store.last_standing("drill") == StandingRecord(1, "posted", T0, later)
        week = T0 + timedelta(days=7)
        assert store.begin_standing("drill", 2, week).state == "new"
        assert store.last_standing("drill") == StandingRecord(2, "posting", week)
        store.standing_not_posted("drill", 2)  # refused: gone, the series is back at its last posted one
        assert store.last_standing("drill") == StandingRecord(1, "posted", T0, later)
        assert store.last_standing("review") is None  # series are apart
        assert store.begin_standing("review", 1, T0).state == "new"

    def test_status_counts_tell_drills_apart(self, store: IncidentStore) -> None:
        store.create_incident(new())
        drill = store.create_incident(new(env="staging", drill=True))
        store.transition(drill.id, [Status.PENDING], Status.DENIED)
        counts = store.status_counts()
        assert counts["pending"] == 1 and counts["denied"] == 1 and counts["drill.denied"] == 1
        assert "drill.pending" not in counts and counts["dead_jobs"] == 0

    def test_status_counts_tell_jobs_due_now_running_and_dead(self, store: IncidentStore) -> None:
        long_ago, far_off = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        for due in (long_ago, long_ago, far_off):
            store.schedule(None, "request", due, {})
        assert len(store.claim_due(long_ago, "w1", limit=1)) == 1
        counts = store.status_counts()
        assert (counts["due_jobs"], counts["running_jobs"], counts["dead_jobs"]) == (1, 1, 0)

    def test_the_audit_log_keeps_order_and_detail(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        store.audit(incident.id, "U1", "a", "ok", {"n": 1}, T0)
        store.audit(incident.id, "U2", "b", "refused", {"reason": "no"}, T0)
        store.audit(None, "U3", "command", "refused", {}, T0)
        log = store.audit_log(incident.id)
        assert [(e.actor, e.action, e.outcome, e.detail) for e in log] == [
            ("U1", "a", "ok", {"n": 1}), ("U2", "b", "refused", {"reason": "no"})]

    def test_due_jobs_are_claimed_once_retried_and_cancelled(self, store: IncidentStore) -> None:
        incident = store.create_incident(new())
        store.cancel_jobs(incident.id, "expire")
        store.schedule(incident.id, "monitor", T0, {"index": 1})
        store.schedule(incident.id, "monitor", T0 + timedelta(hours=1), {"index": 2})
        [job] = store.claim_due(T0, "w1")
        assert job.payload == {"index": 1} and job.attempts == 1
        assert store.claim_due(T0, "w2") == []
        store.retry_job(job.id, T0 + timedelta(minutes=1), "retry")
        [again] = store.claim_due(T0 + timedelta(minutes=1), "w2")
        assert again.id == job.id and again.attempts == 2
        store.finish_job(again.id, "reminded")
        store.cancel_jobs(incident.id, "monitor")
        assert store.claim_due(T0 + timedelta(hours=2), "w3") == [] and store.pending_jobs(incident.id) == []

    def test_a_claimed_job_whose_worker_died_is_claimed_again_after_its_lease(self, store: IncidentStore) -> None:
        store.schedule(None, "sweep", T0, {})
        [job] = store.claim_due(T0, "died")
        assert store.claim_due(T0 + timedelta(minutes=4), "w2") == []
        [again] = store.claim_due(T0 + timedelta(minutes=6), "w2")
        assert again.id == job.id

    def test_jobs_are_claimed_by_one_of_many_workers(self, store: IncidentStore) -> None:
        for n in range(30):
            store.schedule(None, "sweep", T0, {"n": n})
        with ThreadPoolExecutor(max_workers=6) as pool:
            batches = list(pool.map(lambda w: store.claim_due(T0, f"w{w}", limit=7), range(6)))
        claimed = [j.payload["n"] for batch in batches for j in batch]
        assert sorted(claimed) == list(range(30))

    def test_executions_and_other_jobs_are_claimed_apart_by_one_of_many_workers(self, store: IncidentStore) -> None:
        for n in range(24):
            store.schedule(None, "execute" if n % 2 else "sweep", T0, {"n": n})

        def claim(worker: int) -> list[list[DueJob]]:
            batches = []
            while batch := store.claim_due(T0, f"w{worker}", limit=2, executions=3):
                batches.append(batch)
            return batches

        with ThreadPoolExecutor(max_workers=6) as pool:
            batches = [batch for found in pool.map(claim, range(6)) for batch in found]
        assert sorted(j.payload["n"] for batch in batches for j in batch) == list(range(24))
        assert all(sum(j.kind == "execute" for j in batch) <= 3 and sum(j.kind == "sweep" for j in batch) <= 2
                   for batch in batches)

    def test_resolve_once_with_its_summary_delivery_queued(self, store: IncidentStore) -> None:
        from handlers.code import CodeKind
        from handlers.summary import build_summary

        incident_id = self._decided(store)
        assert store.claim_execution(incident_id, "A", LEASE)
        store.start_monitoring(incident_id, "A", T0, [], [NewJob("monitor", T0, {"index": 1, "total": 1})])
        incident = store.get(incident_id)
        resolution = Resolution("U01CAROL", "cause", "lessons", T0)
        summary = build_summary(incident, CodeKind(provider=None), [], store.audit_log(incident_id))  # type: ignore[arg-type]
        resolved = store.resolve(incident_id, resolution, summary, Status.RESOLVED, T0)
        assert resolved.status is Status.RESOLVED and resolved.resolution.root_cause == "cause"
        assert store.resolve(incident_id, resolution, summary, Status.RESOLVED, T0) is None
        assert [j.kind for j in store.pending_jobs(incident_id)] == ["post_summary"]
        assert store.summary(incident_id) == summary
