"""The env-var kind on fakes: snapshots (scheduled and before a change), the plan as fingerprints,
refusals that touch nothing, restore + redeploy exactly once, and verification by reading back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from handlers import approvals, commands, queries
from handlers.env import EnvKind
from handlers.env_plan import EnvPlan
from handlers.execution import execute
from handlers.kind import LeaseLost, Maintained
from handlers.model import Status
from handlers.monitoring import maintenance
from handlers.ports import ProviderError
from handlers.services import Refused
from tests.fakes.env import rename
from tests.fakes.world import ALICE, CAROL, EVE, FakeWorld, fake_world

GOOD, BAD = "https://api.shop.test/v2", "https://api.shop.test/broken"


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path, uncertain_window=5.0)


def kind(w: FakeWorld) -> EnvKind:
    found = w.svc.kinds["env"]
    assert isinstance(found, EnvKind)
    return found


def upkeep(w: FakeWorld) -> None:
    """What the leading worker runs each tick for the kinds."""
    for _key, task in maintenance(w.svc):
        task()


def snapshot_then_break(w: FakeWorld) -> None:
    upkeep(w)  # the scheduled snapshot holds the good value
    w.env.set("API_URL", BAD)


def request(w: FakeWorld, *keys: str, **args: object) -> EnvPlan:
    incident = w.request(ALICE, "env", keys=keys, **args)
    assert isinstance(incident.plan, EnvPlan)
    return incident.plan


def approved(w: FakeWorld, *keys: str) -> int:
    incident = w.request(ALICE, "env", keys=keys or ("API_URL",))
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    return incident.id


def fingerprint_of(w: FakeWorld, key: str) -> Callable[[str], str]:
    return lambda value: w.snapshots.fingerprint(f"prj/{key}", value)


def plaintexts(w: FakeWorld) -> list[str]:
    """Every value the fake project holds or held, long enough to be found only where it leaked."""
    return [v.value for v in w.env.vars if len(v.value) >= 6] + [GOOD, BAD]


def assert_no_plaintext(w: FakeWorld, incident_id: int) -> None:
    incident = w.store.get(incident_id)
    assert incident is not None
    stored = json.dumps([incident.plan.to_json(), [e.detail for e in w.store.audit_log(incident_id)],
                         [s.detail for s in w.store.steps(incident_id)], repr(w.notifier.sent)], default=str)
    for value in plaintexts(w):
        assert value not in stored


# -- snapshots ------------------------------------------------------------------------------


def test_the_worker_snapshots_each_project_when_due_and_only_keeps_changes(w: FakeWorld) -> None:
    assert isinstance(kind(w), Maintained)
    upkeep(w)
    [first] = w.snapshots.snapshots("prj", 10)
    assert first.reason == "scheduled" and first.variables == 3 and first.unreadable == 1  # production only
    snap = w.snapshots.load(first.id)
    assert snap is not None and snap.get("API_URL").value == GOOD  # type: ignore[union-attr]
    assert snap.get("PAYMENT_SECRET").value is None  # type: ignore[union-attr]  # sensitive: not restorable
    reads = w.env.reads
    upkeep(w)
    assert w.env.reads == reads  # not due yet: Vercel is not read
    w.clock.advance(timedelta(hours=1))
    upkeep(w)
    assert w.env.reads == reads + 1 and len(w.snapshots.snapshots("prj", 10)) == 1  # read, unchanged: kept once
    assert w.snapshots.last_checked("prj") == w.clock.now()
    w.env.set("FEATURE_RECS", "off")
    w.clock.advance(timedelta(hours=1))
    upkeep(w)
    assert [s.id for s in w.snapshots.snapshots("prj", 10)] == [2, 1]
    [entry] = [e for e in w.store.audit_log(None) if e.action == "env.maintain"][-1:]
    assert entry.detail["result"] == "S-2 taken"


def test_without_a_key_nothing_is_snapshotted_and_requests_say_why(w: FakeWorld) -> None:
    w.snapshots.key = None
    upkeep(w)
    assert w.snapshots.rows == {} and w.env.reads == 0
    with pytest.raises(Refused, match="ROLLBOT_SECRET_KEY is not set; make one with `rollbot secret-key`"):
        w.request(ALICE, "env", keys=("API_URL",))
    assert w.store.open_incidents() == []


def test_a_snapshot_the_key_cannot_open_is_refused(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.snapshots.wrong_key = True
    with pytest.raises(Refused, match="ROLLBOT_SECRET_KEY cannot decrypt this snapshot"):
        w.request(ALICE, "env", keys=("API_URL",))
    assert w.env.writes == [] and w.store.open_incidents() == []


def test_an_environment_without_env_snapshot_every_has_env_rollbacks_off(w: FakeWorld) -> None:
    prod = w.svc.policy.environments["prod"]
    assert kind(w).configured(prod) is None
    off = kind(w).configured(prod.model_copy(update={"env_snapshot_every": None}))
    assert off == "has no `env_snapshot_every` configured, so no env-var snapshots are taken and env rollbacks are off"
    assert "no `vercel_project`" in (kind(w).configured(w.svc.policy.environments["staging"]) or "")
    assert kind(w).maintain("staging", w.svc.policy.environments["staging"]) is None and w.env.reads == 0


# -- the plan and its refusals ----------------------------------------------------------------


def test_no_snapshot_yet_is_refused(w: FakeWorld) -> None:
    with pytest.raises(Refused, match="no env-var snapshot of `prj` yet"):
        w.request(ALICE, "env", keys=("API_URL",))
    assert w.env.writes == []


def test_the_plan_shows_fingerprints_and_what_changed_since(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.vars.append(type(w.env.vars[0])("env_x", "NEW_FLAG", "1"))
    plan = request(w, "API_URL")
    [change] = plan.changes
    fp = fingerprint_of(w, "API_URL")
    assert (change.key, change.action, change.from_fp, change.to_fp) == ("API_URL", "change", fp(BAD), fp(GOOD))
    assert plan.since == ("NEW_FLAG added",) and plan.deployment == "dpl_live" and not plan.promote
    assert plan.snapshot_id == 1 and not plan.snapshot_named
    text = json.dumps(plan.to_json())
    assert GOOD not in text and BAD not in text


def test_a_key_not_in_the_snapshot_is_refused(w: FakeWorld) -> None:
    snapshot_then_break(w)
    with pytest.raises(Refused, match="`NOPE` is not in snapshot `S-1` of `prj`"):
        request(w, "API_URL", "NOPE")
    assert w.env.writes == [] and w.store.open_incidents() == []


def test_a_sensitive_key_is_refused(w: FakeWorld) -> None:
    snapshot_then_break(w)
    with pytest.raises(Refused, match="`PAYMENT_SECRET` is a sensitive variable: Vercel never returns its value"):
        request(w, "PAYMENT_SECRET")
    assert w.env.writes == []


def test_nothing_to_restore_is_refused(w: FakeWorld) -> None:
    upkeep(w)
    with pytest.raises(Refused, match="already hold the values of snapshot `S-1`; nothing to restore"):
        request(w, "API_URL")


def test_the_newest_snapshot_that_differs_is_used_unless_one_is_named(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.clock.advance(timedelta(hours=1))
    upkeep(w)  # S-2 caught the bad value: restoring from it would change nothing
    assert request(w, "API_URL").snapshot_id == 1
    with pytest.raises(Refused, match="nothing to restore"):
        w.request(ALICE, "env", keys=("API_URL",), snapshot=2)
    with pytest.raises(Refused, match="no snapshot `S-9` of `prj`"):
        w.request(ALICE, "env", keys=("API_URL",), snapshot=9)
    rename(w.snapshots, 2, "prj_other")
    with pytest.raises(Refused, match="no snapshot `S-2` of `prj`"):
        w.request(ALICE, "env", keys=("API_URL",), snapshot=2)


# -- execution ---------------------------------------------------------------------------------


def test_after_approval_it_snapshots_restores_once_redeploys_and_verifies(w: FakeWorld) -> None:
    snapshot_then_break(w)
    incident_id = approved(w)
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.MONITORING
    assert w.env.value("API_URL") == GOOD and w.env.value("FEATURE_RECS") == "on"
    assert w.env.writes == [("set", "API_URL"), ("redeploy", "dpl_live")]
    [build] = w.env.builds
    assert build.env["API_URL"] == GOOD and w.env.production_uid == build.uid  # the rebuild carries the value
    before = w.snapshots.snapshots("prj", 1)[0]
    assert before.reason == f"before {done.ref}"
    assert w.snapshots.load(before.id).get("API_URL").value == BAD  # type: ignore[union-attr]  # undoable
    [(_, result, ok)] = w.notifier.sent["verification"]
    assert ok and result.detail == f"API_URL read back as in S-1; production serves {build.uid}, rebuilt with them"
    assert {(s.name, s.status) for s in w.store.steps(incident_id)} == {
        ("env.snapshot", "ok"), ("env.restore", "ok"), ("env.redeploy", "ok"), ("env.serving", "ok"), ("verify", "ok")}
    assert_no_plaintext(w, incident_id)


def test_a_variable_removed_since_the_snapshot_is_re_created(w: FakeWorld) -> None:
    upkeep(w)
    w.env.vars = [v for v in w.env.vars if v.key != "FEATURE_RECS"]
    plan = request(w, "FEATURE_RECS")
    assert [(c.key, c.action, c.from_fp) for c in plan.changes] == [("FEATURE_RECS", "create", None)]
    incident = w.store.open_incidents()[0]
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    assert execute(w.svc, incident.id).status is Status.MONITORING
    assert w.env.value("FEATURE_RECS") == "on" and w.env.writes[0] == ("create", "FEATURE_RECS")


def test_a_value_changed_after_approval_voids_the_approvals_without_a_write(w: FakeWorld) -> None:
    snapshot_then_break(w)
    incident_id = approved(w)
    w.env.set("API_URL", "https://api.shop.test/other")
    reopened = execute(w.svc, incident_id)
    assert reopened is not None and reopened.status is Status.PENDING and reopened.valid_approvals() == ()
    assert w.env.writes == []


def test_a_write_that_timed_out_but_took_effect_is_not_sent_again(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.script = ["timeout-applied"]
    incident_id = approved(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert w.env.writes.count(("set", "API_URL")) == 1


def test_a_write_that_timed_out_and_was_lost_is_sent_again_after_reading_back(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.script = ["timeout-lost"]
    incident_id = approved(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert w.env.writes.count(("set", "API_URL")) == 2 and w.env.value("API_URL") == GOOD


def test_an_unanswered_redeploy_is_found_by_its_tag_not_sent_again(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.script = ["ok", "timeout-applied"]
    incident_id = approved(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert w.env.writes.count(("redeploy", "dpl_live")) == 1 and len(w.env.builds) == 1


def test_a_lost_redeploy_is_sent_again_once_vercel_shows_none(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.script = ["ok", "timeout-lost"]
    incident_id = approved(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert w.env.writes.count(("redeploy", "dpl_live")) == 2 and len(w.env.builds) == 1
    log = [(e.action, e.outcome) for e in w.store.audit_log(incident_id)]
    assert ("env.redeploy", "not_taken") in log


def test_production_pinned_by_an_instant_rollback_is_promoted(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.pinned = True
    plan = request(w, "API_URL")
    assert plan.promote
    incident = w.store.open_incidents()[0]
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    assert execute(w.svc, incident.id).status is Status.MONITORING
    assert w.env.promotes == [w.env.builds[0].uid] and w.env.production_uid == w.env.builds[0].uid


def test_a_failed_build_fails_the_incident_saying_the_values_are_restored(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.fail_build = True
    incident_id = approved(w)
    failed = execute(w.svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED
    [(_, error, next_step)] = w.notifier.sent["failure"]
    assert "the variables are restored, but the rebuilt deployment" in error and "ended ERROR" in error
    assert "Settings → Environment Variables" in next_step
    assert w.env.production_uid == "dpl_live"


def test_a_refused_write_of_the_second_key_says_what_was_restored(w: FakeWorld) -> None:
    upkeep(w)
    w.env.set("API_URL", BAD)
    w.env.set("FEATURE_RECS", "off")
    incident_id = approved(w, "API_URL", "FEATURE_RECS")
    w.env.script = ["ok", "400"]
    failed = execute(w.svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED
    [(_, error, _)] = w.notifier.sent["failure"]
    assert "Vercel did not take `FEATURE_RECS`" in error and "Restored so far: API_URL" in error
    assert "not redeployed" in error and not w.env.builds


def test_a_rerun_after_a_crash_skips_what_is_done(w: FakeWorld) -> None:
    snapshot_then_break(w)
    incident_id = approved(w)
    plan = w.store.get(incident_id).plan
    assert isinstance(plan, EnvPlan)
    w.env.set("API_URL", GOOD)  # an earlier executor's write landed before it died
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert ("set", "API_URL") not in w.env.writes
    assert kind(w).took_effect(plan)


def test_verification_fails_when_a_value_reads_back_different(w: FakeWorld) -> None:
    snapshot_then_break(w)
    incident_id = approved(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    plan = w.store.get(incident_id).plan
    w.env.set("API_URL", "https://elsewhere.test")
    result = kind(w).verify(plan)
    fp = fingerprint_of(w, "API_URL")
    assert not result.ok and result.detail == f"API_URL reads {fp('https://elsewhere.test')}, not {fp(GOOD)}"


# -- the command and the listing ----------------------------------------------------------------


def test_the_command_takes_keys_a_named_snapshot_and_a_reason(w: FakeWorld) -> None:
    parsed = commands.parse("env prod API_URL FEATURE_RECS from S-3 config push broke it", w.svc.policy, w.svc.kinds)
    assert parsed == commands.Rollback("env", "prod", "config push broke it",
                                       {"keys": ("API_URL", "FEATURE_RECS"), "snapshot": 3})
    assert commands.parse("config prod list", w.svc.policy, w.svc.kinds) == commands.Query(
        "env", "prod", ("list",))
    with pytest.raises(commands.CommandError, match="needs at least one variable name in UPPER_CASE, or `list`"):
        commands.parse("env prod api_url", w.svc.policy, w.svc.kinds)
    with pytest.raises(commands.CommandError, match="`yesterday` is not a snapshot"):
        commands.parse("env prod API_URL from yesterday", w.svc.policy, w.svc.kinds)


def test_list_shows_snapshots_by_key_never_values(w: FakeWorld) -> None:
    upkeep(w)
    w.env.set("API_URL", BAD)
    w.clock.advance(timedelta(hours=2))
    upkeep(w)
    text = queries.answer(w.svc, ALICE, commands.Query("env", "prod", ("list",)))
    assert "`S-2` 0s ago (scheduled): 3 variables, 1 sensitive (not restorable); API_URL changed" in text
    assert "`S-1` 2h ago (scheduled): 3 variables, 1 sensitive (not restorable); first snapshot" in text
    assert GOOD not in text and BAD not in text
    with pytest.raises(Refused, match="not allowed|cannot|not in"):
        queries.answer(w.svc, EVE, commands.Query("env", "prod", ("list",)))
    assert [e.outcome for e in w.store.audit_log(None) if e.action == "query.env"] == ["ok", "refused"]


# -- what a reviewer broke once ----------------------------------------------------------------


def test_an_executor_that_dies_waiting_for_the_build_is_resumed_without_a_second_redeploy(w: FakeWorld) -> None:
    snapshot_then_break(w)
    incident_id = approved(w)
    real = w.env.deployment_state
    calls = {"n": 0}

    def dies_once(uid: str) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise LeaseLost()  # the executor stalls while the build runs
        return real(uid)

    w.env.deployment_state = dies_once  # type: ignore[method-assign]
    assert execute(w.svc, incident_id, heartbeat=False) is None
    w.clock.advance(timedelta(seconds=61))
    done = execute(w.svc, incident_id, resume=True, heartbeat=False)
    assert done is not None and done.status is Status.MONITORING
    assert w.env.writes.count(("redeploy", "dpl_live")) == 1 and len(w.env.builds) == 1
    befores = [s for s in w.snapshots.snapshots("prj", 10) if s.reason == f"before {done.ref}"]
    assert len(befores) == 1  # the resumed run keeps the snapshot of the values before, not one of its own


def test_a_new_request_for_the_same_change_never_adopts_an_earlier_requests_redeploy(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.fail_build = True
    first = approved(w)
    assert execute(w.svc, first).status is Status.FAILED
    w.env.fail_build = False
    w.env.set("API_URL", BAD)  # broken again, the same way
    second = approved(w)
    assert w.store.get(first).plan.tag != w.store.get(second).plan.tag
    w.env.script = ["ok", "timeout-lost"]  # its redeploy is lost: the earlier, failed one must not stand in
    assert execute(w.svc, second).status is Status.MONITORING
    assert len(w.env.builds) == 2 and w.env.production_uid == w.env.builds[1].uid


def test_an_unanswered_redeploy_is_not_sent_again_while_vercel_cannot_be_listed(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.script = ["ok", "timeout-lost"]
    incident_id = approved(w)
    real = w.env.find_redeploy

    def listing_down_after_the_send(project: str, tag: str) -> str | None:
        if ("redeploy", "dpl_live") in w.env.writes:
            raise ProviderError("Vercel answered 503", status=503)
        return real(project, tag)

    w.env.find_redeploy = listing_down_after_the_send  # type: ignore[method-assign]
    failed = execute(w.svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED
    assert w.env.writes.count(("redeploy", "dpl_live")) == 1
    [(_, error, _)] = w.notifier.sent["failure"]
    assert "API_URL are restored in Vercel, but production may still run the old values" in error
    assert "not sent again" in error


def test_several_keys_come_from_the_newest_snapshot_where_every_one_differs(w: FakeWorld) -> None:
    upkeep(w)  # S-1: both good
    w.env.set("API_URL", BAD)
    w.clock.advance(timedelta(hours=1))
    upkeep(w)  # S-2: API_URL bad, FEATURE_RECS good
    w.env.set("FEATURE_RECS", "off")
    plan = request(w, "API_URL", "FEATURE_RECS")
    assert plan.snapshot_id == 1 and {c.key for c in plan.changes} == {"API_URL", "FEATURE_RECS"}


def test_an_unanswered_create_is_read_back_and_a_conflict_after_it_is_not_a_failure(w: FakeWorld) -> None:
    upkeep(w)
    w.env.vars = [v for v in w.env.vars if v.key != "FEATURE_RECS"]
    w.env.script = ["timeout-applied"]
    incident = w.request(ALICE, "env", keys=("FEATURE_RECS",))
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    assert execute(w.svc, incident.id).status is Status.MONITORING
    assert w.env.writes.count(("create", "FEATURE_RECS")) == 1 and w.env.value("FEATURE_RECS") == "on"


def test_a_build_that_never_finishes_fails_saying_the_values_are_restored(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env.build_polls = 10**9
    incident_id = approved(w)
    failed = execute(w.svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED
    [(_, error, _)] = w.notifier.sent["failure"]
    assert error.startswith("API_URL are restored in Vercel, but production may still run the old values")
    assert "was not READY within 15m" in error


def test_a_key_that_became_sensitive_is_refused(w: FakeWorld) -> None:
    snapshot_then_break(w)
    w.env._var("API_URL").type = "sensitive"
    with pytest.raises(Refused, match="`API_URL` cannot be read now"):
        request(w, "API_URL")


def test_a_failing_scheduled_snapshot_backs_off(w: FakeWorld) -> None:
    w.env.unreadable = True
    env = w.svc.policy.environments["prod"]
    with pytest.raises(ProviderError):
        kind(w).maintain("prod", env)
    assert kind(w).maintain("prod", env) is None  # not again at once: 30 s later, then 1 m, 2 m, …
    w.env.unreadable = False
    w.clock.advance(timedelta(seconds=31))
    assert kind(w).maintain("prod", env) == "S-1 taken"


def test_a_reason_is_not_taken_for_keys(w: FakeWorld) -> None:
    parsed = commands.parse("env prod API_URL I broke it", w.svc.policy, w.svc.kinds)
    assert isinstance(parsed, commands.Rollback) and parsed.args == {"keys": ("API_URL",)}
    assert parsed.reason == "I broke it"
