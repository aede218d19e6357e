"""The combined kind (the decision matrix's Security / Critical row: code + config) on fakes: one
incident and one approval for both plans, the parts executed in order and each verified, a part
that fails stops the rest and says what stays done, a resumed execution skips a verified part,
and the locks of both parts held."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config_file import parse_policy
from handlers import approvals, commands
from handlers.code import CodePlan
from handlers.combined import CombinedKind, CombinedPlan
from handlers.env_plan import EnvPlan
from handlers.execution import execute
from handlers.model import Status
from handlers.monitoring import maintenance
from handlers.services import Refused
from tests.fakes.ports import deployment
from tests.fakes.world import ALICE, BOB, CAROL, FakeWorld, fake_world, policy_data

GOOD, BAD = "https://api.shop.test/v2", "https://api.shop.test/broken"


def one_project(w: FakeWorld) -> None:
    """The code and env fakes as one Vercel project: the code part's instant rollback pins
    production, and the env part's promoted rebuild is what the code provider then reads."""
    env, vercel = w.env, w.vercel
    rollback, promote = vercel.rollback, env.promote

    def rolled_back(project: str, deployment_uid: str, description: str) -> None:
        rollback(project, deployment_uid, description)
        env.production_uid, env.pinned = vercel.production, True

    def promoted(project: str, uid: str) -> None:
        promote(project, uid)
        vercel.production, vercel.job = uid, None
        vercel.deployments.append(deployment(uid, 0))  # the rebuild: the newest production deployment

    vercel.rollback = rolled_back  # type: ignore[method-assign]
    env.promote = promoted  # type: ignore[method-assign]


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    world = fake_world(tmp_path, uncertain_window=5.0)
    for _key, task in maintenance(world.svc):  # the scheduled snapshot holds the good value
        task()
    world.env.set("API_URL", BAD)
    one_project(world)
    return world


def combined(w: FakeWorld) -> CombinedKind:
    kind = w.svc.kinds["code+env"]
    assert isinstance(kind, CombinedKind)
    return kind


def request(w: FakeWorld, user: str = ALICE) -> int:
    incident = w.request(user, "code+env", reason="leaked token", code={}, env={"keys": ("API_URL",)})
    return incident.id


def approve(w: FakeWorld, incident_id: int, user: str = CAROL) -> None:
    incident = w.store.get(incident_id)
    assert incident is not None
    assert approvals.approve(w.svc, user, incident_id, incident.plan_hash).decided


def test_registered_with_the_matrix_rows_target_risk_and_every_parts_steps(w: FakeWorld) -> None:
    kind = combined(w)
    assert kind.title == "Code + Env-var rollback"
    assert (kind.target, kind.risk) == (timedelta(minutes=10), "Low")
    assert [s.name for s in kind.steps] == ["vercel.rollback", "vercel.alias", "code.verified", "env.snapshot",
                                            "env.restore", "env.redeploy", "env.serving", "env.verified"]
    assert kind.lease == max(w.svc.kinds["code"].lease, w.svc.kinds["env"].lease)
    assert "code+env" in commands.usage(w.svc.kinds)


def test_the_command_takes_each_parts_arguments_then_the_reason(w: FakeWorld) -> None:
    cmd = commands.parse("code+config prod dpl_good API_URL FEATURE_RECS token leaked in the build",
                         w.svc.policy, w.svc.kinds)
    assert isinstance(cmd, commands.Rollback) and cmd.kind == "code+env"
    assert cmd.args == {"code": {"deployment": "dpl_good"}, "env": {"keys": ("API_URL", "FEATURE_RECS")}}
    assert cmd.reason == "token leaked in the build"
    with pytest.raises(commands.CommandError, match="needs at least one variable name"):
        commands.parse("code+env prod the token leaked", w.svc.policy, w.svc.kinds)


def test_one_plan_holds_both_parts_and_the_env_part_rebuilds_the_code_parts_target(w: FakeWorld) -> None:
    incident = w.store.get(request(w))
    assert incident is not None and incident.kind == "code+env" and incident.approvals_needed == 1
    plan = incident.plan
    assert isinstance(plan, CombinedPlan)
    code, env = plan.parts
    assert isinstance(code, CodePlan) and isinstance(env, EnvPlan)
    assert code.to_deployment.uid == "dpl_good"
    # Not the deployment serving now (dpl_live on the env fake): that would bring the bad code back.
    assert (env.deployment, env.promote) == ("dpl_good", True)
    assert w.svc.kinds.load_plan(plan.to_json()) == plan  # stored as jsonb, validated on load
    assert combined(w).replan(plan, w.svc.policy.environments["prod"]).hash == plan.hash


def test_one_approval_executes_code_then_env_each_verified(w: FakeWorld) -> None:
    incident_id = request(w)
    approve(w, incident_id)
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.MONITORING
    assert w.vercel.rollbacks == ["dpl_good"]
    assert w.env.value("API_URL") == GOOD and w.env.writes[0] == ("set", "API_URL")
    assert w.env.writes[-1] == ("redeploy", "dpl_good")  # the good code, rebuilt with the good value
    [build] = w.env.builds
    assert w.vercel.production == w.env.production_uid == build.uid  # promoted: what production serves now
    log = [(e.action, e.outcome, e.detail.get("part")) for e in w.store.audit_log(incident_id)]
    order = [entry for entry in log if entry[0] in ("vercel.rollback", "read_back", "env.restore", "env.snapshot")]
    assert order.index(("read_back", "ok", "code")) < order.index(("env.snapshot", "ok", None))
    assert ("read_back", "ok", "env") in order
    # The code part, first, sent on the re-check's read of the alias.
    assert [e.detail["read"] for e in w.store.audit_log(incident_id) if e.action == "vercel.read_alias"] == [
        "at the re-check"]
    steps = {s.name: s.status for s in w.store.steps(incident_id)}
    assert steps["code.verified"] == steps["env.verified"] == steps["verify"] == "ok"
    [(_, result, ok)] = w.notifier.sent["verification"]
    assert ok and result.detail.startswith("Code rollback: read back before the env part built on it; ")
    assert "; Env-var rollback: API_URL read back" in result.detail
    assert combined(w).took_effect(done.plan)


def test_the_whole_is_read_back_by_its_end_state(w: FakeWorld) -> None:
    incident_id = request(w)
    approve(w, incident_id)
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.MONITORING
    w.env.set("API_URL", BAD)  # the later part no longer holds: neither does the whole
    assert not combined(w).verify(done.plan).ok and not combined(w).took_effect(done.plan)


def test_a_provider_error_in_a_part_says_which_part_and_what_stays(w: FakeWorld) -> None:
    incident_id = request(w)
    approve(w, incident_id)
    w.env.build_polls = 10**9  # the rebuild never gets READY: the env kind raises a ProviderError
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.FAILED and done.failure is not None
    assert done.failure.startswith("Env-var rollback (part 2 of 2): API_URL are restored in Vercel, but production")
    assert done.failure.endswith("; Code rollback before it is done and verified, and stays")


def test_each_part_runs_under_the_combined_plans_revision(w: FakeWorld) -> None:
    incident = w.store.get(request(w))
    assert incident is not None
    again = incident.plan.model_copy(update={"revision": 2})
    tags = {env.tag for env in (p for p in (combined(w)._parts(plan)[1] for plan in (incident.plan, again)))
            if isinstance(env, EnvPlan)}
    assert len(tags) == 2  # a voided revision's redeploy is never taken for this one's
    assert w.svc.kinds.load_plan(again.to_json()) == again


def test_a_later_code_rollback_never_goes_back_to_the_deployment_rolled_away_from(w: FakeWorld) -> None:
    incident_id = request(w)
    approve(w, incident_id)
    assert execute(w.svc, incident_id) is not None
    w.store.transition(incident_id, [Status.MONITORING], Status.RESOLVED)
    follow_up = w.request(BOB, "code", reason="still broken")
    assert isinstance(follow_up.plan, CodePlan)
    # Production serves the rebuild, newer than dpl_bad; the last known good is never dpl_bad again.
    assert follow_up.plan.to_deployment.uid == "dpl_good"


def test_a_code_part_that_fails_stops_before_the_env_part(w: FakeWorld) -> None:
    incident_id = request(w)
    approve(w, incident_id)
    w.vercel.script = ["fail-job"]
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.FAILED
    assert done.failure is not None and done.failure.startswith("Code rollback (part 1 of 2): ")
    assert done.failure.endswith("; Env-var rollback was not started")
    assert w.env.writes == [] and w.env.value("API_URL") == BAD
    [(_, _error, next_step)] = w.notifier.sent["failure"]
    assert next_step.startswith("1. Runbook, code rollback") and "\n2. Runbook, environment variables" in next_step


def test_an_env_part_that_fails_says_the_code_rollback_stays_done(w: FakeWorld) -> None:
    incident_id = request(w)
    approve(w, incident_id)
    w.env.fail_build = True  # the rebuild with the restored values ends in ERROR
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.FAILED
    assert w.vercel.production == "dpl_good"
    assert done.failure is not None and done.failure.startswith("Env-var rollback (part 2 of 2): ")
    assert "Code rollback before it is done and verified, and stays" in done.failure


def test_a_resume_never_sends_the_code_rollback_again(w: FakeWorld) -> None:
    incident_id = request(w)
    approve(w, incident_id)
    kind = combined(w)
    incident = w.store.get(incident_id)
    assert incident is not None
    # An earlier executor rolled the code back, verified it and died before the env part.
    w.vercel.production = "dpl_good"
    w.store.start_step(incident_id, "code.verified", w.clock.now())
    w.store.finish_step(incident_id, "code.verified", "ok", "production serves dpl_good", w.clock.now())
    w.store.start_step(incident_id, "vercel.rollback", w.clock.now())
    sent = list(w.vercel.rollbacks)
    done = execute(w.svc, incident_id, resume=True)
    assert done is not None and done.status is Status.MONITORING
    assert w.vercel.rollbacks == sent  # nothing sent again
    parts_read = [e.detail.get("part") for e in w.store.audit_log(incident_id) if e.action == "read_back"]
    assert "code" not in parts_read and "env" in parts_read  # the verified part was skipped, not redone
    assert w.env.value("API_URL") == GOOD
    assert kind.took_effect(incident.plan)


def test_both_parts_locks_are_held(w: FakeWorld) -> None:
    first = request(w)
    for kind, args in (("code", {}), ("env", {"keys": ("API_URL",)})):
        with pytest.raises(Refused, match=f"RB-{first}"):
            w.request(BOB, kind, **args)
    incident = w.store.get(first)
    assert incident is not None
    w.store.transition(first, [Status.PENDING], Status.CANCELLED)
    code = w.request(BOB, "code")
    with pytest.raises(Refused, match=f"{code.ref}"):
        request(w)


def test_the_rule_is_the_strictest_parts_from_roles_that_may_approve_both(tmp_path: Path) -> None:
    data = policy_data()
    rules = data["environments"]["prod"]["policy"]
    rules["code"] = {"approvers": ["lead", "engineer"], "approvals": 1}
    rules["env"] = {"approvers": ["lead", "dba"], "approvals": 2}
    rule = parse_policy(data).environments["prod"].policy.rule("code+env")
    assert (rule.approvers, rule.approvals) == (("lead",), 2)
    rules["env"] = {"approvers": ["dba"], "approvals": 1}
    policy = parse_policy(data)
    assert policy.environments["prod"].policy.rule("code+env").approvers == ()
    w = fake_world(tmp_path)
    assert "no role that may approve every part" in (combined(w).configured(policy.environments["prod"]) or "")
    rules["code+env"] = {"approvers": ["dba"], "approvals": 2}  # a rule of its own wins
    assert parse_policy(data).environments["prod"].policy.rule("code+env").approvals == 2


def test_a_part_that_refuses_names_the_part_and_nothing_is_created(w: FakeWorld) -> None:
    w.env.set("API_URL", GOOD)  # nothing to restore
    with pytest.raises(Refused, match=r"^Env-var rollback: .*nothing to restore"):
        request(w)
    assert w.store.recent(5) == []
