"""The feature-flag kind on fakes: the plan shows the value now and the off value; after approval
one PATCH of that item only, read back until visible, verified; refusals touch nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers import approvals
from handlers.execution import execute
from handlers.flag import FlagPlan
from handlers.model import Status
from handlers.services import Refused
from tests.fakes.world import ALICE, CAROL, FakeWorld, fake_world


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path, uncertain_window=5.0)


def _flag(w: FakeWorld, key: str = "new_checkout") -> int:
    incident = w.request(ALICE, "flag", key=key)
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    return incident.id


def test_a_boolean_flag_is_planned_to_false_with_its_value_now(w: FakeWorld) -> None:
    incident = w.request(ALICE, "flag", key="new_checkout")
    plan = incident.plan
    assert isinstance(plan, FlagPlan)
    assert (plan.edge_config, plan.key, plan.from_value, plan.to_value) == ("ecfg_test", "new_checkout", True, False)
    assert plan.change == ("true", "false") and plan.target == "new_checkout"
    assert incident.checklist["known_good"] is True  # off is the known good state
    assert w.flags.patches == []


def test_a_flag_with_a_configured_off_value_is_planned_to_it(w: FakeWorld) -> None:
    plan = w.request(ALICE, "flag", key="promo_banner").plan
    assert isinstance(plan, FlagPlan) and (plan.from_value, plan.to_value) == ("Sale!", "")


def test_a_non_boolean_flag_without_an_off_value_is_refused_with_the_fix(w: FakeWorld) -> None:
    with pytest.raises(Refused, match=r"not a boolean flag .*50.*flags = \{ max_cart_items = \{ off = … \} \}.*"
                                      r"\[environments.prod\]"):
        w.request(ALICE, "flag", key="max_cart_items")
    assert w.flags.patches == [] and w.store.open_incidents() == []


def test_an_unknown_key_is_refused_naming_close_matches(w: FakeWorld) -> None:
    with pytest.raises(Refused, match="`new_chekout` is not a flag in Edge Config `ecfg_test`. Did you mean "
                                      "`new_checkout`"):
        w.request(ALICE, "flag", key="new_chekout")
    assert w.flags.patches == [] and w.store.open_incidents() == []


def test_a_flag_already_off_is_refused(w: FakeWorld) -> None:
    with pytest.raises(Refused, match="already false"):
        w.request(ALICE, "flag", key="search_v2")


def test_after_approval_one_patch_of_that_item_only_then_verified(w: FakeWorld) -> None:
    before = dict(w.flags.items)
    incident_id = _flag(w)
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.MONITORING
    assert w.flags.patches == [("ecfg_test", "new_checkout", False)]
    assert w.flags.items == {**before, "new_checkout": False}  # nothing else touched
    [(_, result, ok)] = w.notifier.sent["verification"]
    assert ok and result.detail == "new_checkout reads false"


def test_it_waits_until_the_new_value_is_visible(w: FakeWorld) -> None:
    w.flags.lag = 3  # three reads still show the old value after the write
    incident_id = _flag(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert len(w.flags.patches) == 1 and w.time.slept  # it looked again, with a pause


def test_a_write_that_timed_out_but_took_effect_is_not_sent_again(w: FakeWorld) -> None:
    w.flags.script = ["timeout-applied"]
    incident_id = _flag(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert len(w.flags.patches) == 1
    log = [(e.action, e.outcome) for e in w.store.audit_log(incident_id)]
    assert ("flag.update", "uncertain") in log and ("flag.update", "not_taken") not in log


def test_a_write_that_timed_out_and_was_lost_is_sent_again_after_reading_back(w: FakeWorld) -> None:
    w.flags.script = ["timeout-lost"]
    incident_id = _flag(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert len(w.flags.patches) == 2
    log = [(e.action, e.outcome) for e in w.store.audit_log(incident_id)]
    assert log.index(("flag.update", "not_taken")) < len(log) - 1


def test_a_flag_changed_since_approval_reopens_the_request_without_a_write(w: FakeWorld) -> None:
    incident_id = _flag(w, "promo_banner")
    w.flags.items["promo_banner"] = "Other sale"  # someone changed it by hand meanwhile
    reopened = execute(w.svc, incident_id)
    assert reopened is not None and reopened.status is Status.PENDING and reopened.plan.revision == 1
    assert reopened.plan.change == ('"Other sale"', '""') and reopened.valid_approvals() == ()
    assert w.flags.patches == [] and w.notifier.count("plan_changed") == 1


def test_a_failed_write_fails_the_incident_and_gives_the_runbook_step(w: FakeWorld) -> None:
    incident_id = _flag(w)
    w.flags.script = ["timeout-lost", "timeout-lost", "timeout-lost"]
    failed = execute(w.svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED
    assert len(w.flags.patches) == 3 and w.flags.items["new_checkout"] is True
    [(_, error, next_step)] = w.notifier.sent["failure"]
    assert "went unanswered 3 times" in error and "Edge Config" in next_step


def test_an_environment_without_an_edge_config_refuses_flag_rollbacks(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    with pytest.raises(Refused, match="has no `edge_config` configured"):
        from handlers.commands import Rollback
        from handlers.requests import request_rollback

        request_rollback(w.svc, ALICE, Rollback("flag", "staging", "x", {"key": "new_checkout"}))


def test_a_number_is_not_a_boolean(w: FakeWorld) -> None:
    w.flags.items["rollout_percent"] = 0  # zero, not false
    with pytest.raises(Refused, match="not a boolean flag"):
        w.request(ALICE, "flag", key="rollout_percent")
    incident_id = _flag(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    w.flags.items["new_checkout"] = 0  # someone wrote 0 over it: Python's 0 == False must not pass for it
    plan = w.store.get(incident_id).plan
    result = w.svc.kinds["flag"].verify(plan)
    assert not result.ok and result.detail == "new_checkout reads 0, not false"
    assert not w.svc.kinds["flag"].took_effect(plan)


def test_after_an_unanswered_write_it_is_never_sent_over_someone_elses_change(w: FakeWorld) -> None:
    incident_id = _flag(w, "promo_banner")
    w.flags.script = ["timeout-lost"]
    real = w.flags.flag_items

    def edited_meanwhile(config_id: str):  # noqa: ANN202 - someone edits the banner by hand during the wait
        if w.flags.patches:
            w.flags.items["promo_banner"] = "Hand-edited banner"
        return real(config_id)

    w.flags.flag_items = edited_meanwhile  # type: ignore[method-assign]
    failed = execute(w.svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED
    assert len(w.flags.patches) == 1 and w.flags.items["promo_banner"] == "Hand-edited banner"


def test_a_flag_turned_off_by_hand_after_approval_is_verified_not_failed(w: FakeWorld) -> None:
    incident_id = _flag(w)
    w.flags.items["new_checkout"] = False  # someone beat Rollbot to it
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.MONITORING and w.flags.patches == []


def test_numbers_compare_by_value_booleans_only_with_booleans() -> None:
    from handlers.flag import same

    assert same(0, 0.0) and same({"a": [1, 2.0]}, {"a": [1.0, 2]}) and same(None, None)
    assert not same(0, False) and not same(1, True) and not same("1", 1) and not same([1], [1, 2])


def test_an_off_value_of_another_type_than_the_flag_is_refused(tmp_path: Path) -> None:
    from bot.config_file import parse_policy
    from tests.fakes.world import policy_data

    data = policy_data()
    data["environments"]["prod"]["flags"] = {"new_checkout": {"off": "false"}}  # a string, for a boolean flag
    w = fake_world(tmp_path)
    w.svc.policy = parse_policy(data)
    with pytest.raises(Refused, match="holds a boolean .* but its configured off value is a string"):
        w.request(ALICE, "flag", key="new_checkout")
    assert w.flags.patches == []


def test_an_executor_that_died_after_an_unanswered_update_is_read_back_before_sending(w: FakeWorld) -> None:
    from datetime import timedelta

    from handlers.takeover import resume

    incident_id = _flag(w)
    assert w.store.claim_execution(incident_id, "crashed-worker", timedelta(seconds=30))
    w.store.audit(incident_id, "rollbot", "flag.update", "attempt", {}, w.clock.now())
    w.store.audit(incident_id, "rollbot", "flag.update", "uncertain", {}, w.clock.now())  # then it died
    w.clock.advance(31)
    resumed = resume(w.svc, incident_id)
    assert resumed is not None and resumed.status is Status.MONITORING
    assert len(w.flags.patches) == 1 and sum(w.time.slept) >= 5.0  # it watched the window before sending


def test_a_plan_that_no_longer_holds_is_reported_once_escaped(w: FakeWorld) -> None:
    incident_id = _flag(w, "promo_banner")
    w.flags.items["promo_banner"] = ["<b>", "&"]  # now an array: the approved string off value no longer fits
    failed = execute(w.svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED and w.flags.patches == []
    [(_, error, _)] = w.notifier.sent["failure"]
    assert '["<b>", "&"]' in error and "&lt;" not in error  # the failure note escapes it, once
