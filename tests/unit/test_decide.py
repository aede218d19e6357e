"""`/rollback decide` on fakes: the matrix row and severity, the form's fields turned into the
rollback they stand for (each kind parsing its own arguments), the suggestions each kind can make,
and the forms as valid Block Kit that say what Rollbot filled in."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk.models.views import View

from bot.blocks.decide import args_block, decide_modal, request_form
from handlers import decide
from handlers.commands import Rollback
from handlers.monitoring import maintenance
from handlers.requests import request_rollback
from tests.fakes.world import ALICE, FakeWorld, fake_world


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path)


def test_a_row_and_its_severity_pick_the_kind(w: FakeWorld) -> None:
    security = decide.decision(w.svc, "Security", None)
    assert (security.kind.name, security.severity, security.parts) == ("code+env", "Critical", ("code", "env"))
    assert security.suggesting == ("env",)
    assert decide.decision(w.svc, "Feature broken", "High").severity == "High"
    with pytest.raises(decide.InputError) as unknown:
        decide.decision(w.svc, "Meteor strike", None)
    assert unknown.value.field == "issue"
    with pytest.raises(decide.InputError) as severity:
        decide.decision(w.svc, "Security", "Apocalyptic")
    assert severity.value.field == "severity" and "Low, Medium, High, Critical" in severity.value.message


def test_the_forms_fields_become_the_rollback_each_kind_parses(w: FakeWorld) -> None:
    security = decide.decision(w.svc, "Security", "High")
    cmd = decide.rollback(w.svc, security, "prod", {"code": "dpl_good", "env": "API_URL FEATURE_RECS"}, " leaked ")
    assert cmd == Rollback("code+env", "prod", "leaked", {"code": {"deployment": "dpl_good"},
                                                          "env": {"keys": ("API_URL", "FEATURE_RECS")}},
                           issue="Security", severity="High")
    flag = decide.rollback(w.svc, decide.decision(w.svc, "Feature broken", None), "prod", {"flag": "promo_banner"}, "")
    assert (flag.kind, flag.args, flag.issue, flag.severity) == ("flag", {"key": "promo_banner"}, "Feature broken",
                                                                 "Medium")


@pytest.mark.parametrize(("arguments", "field", "words"), [
    ({"code": "", "env": "api_url"}, "env", "UPPER_CASE"),
    ({"code": "dpl_%%", "env": "API_URL"}, "code", "not a Vercel deployment id"),
    ({"code": "please hurry", "env": "API_URL"}, "code", "`please` is not an argument"),
])
def test_a_bad_field_is_named_and_nothing_starts(w: FakeWorld, arguments: dict[str, str], field: str,
                                                  words: str) -> None:
    security = decide.decision(w.svc, "Security", None)
    with pytest.raises(decide.InputError) as error:
        decide.rollback(w.svc, security, "prod", arguments, "")
    assert error.value.field == field and words in error.value.message
    with pytest.raises(decide.InputError) as missing:
        decide.rollback(w.svc, security, None, {"env": "API_URL"}, "")
    assert missing.value.field == "environment"
    assert w.store.recent(5) == []


def test_suggestions_are_what_each_kind_can_tell(w: FakeWorld) -> None:
    security = decide.decision(w.svc, "Security", None)
    for _key, task in maintenance(w.svc):  # a scheduled snapshot
        task()
    assert decide.suggestions(w.svc, security, "prod") == {}  # nothing differs from it yet
    w.env.set("API_URL", "https://api.shop.test/broken")
    for _key, task in maintenance(w.svc):  # a later snapshot holds the bad value: the older one still counts
        task()
    assert decide.suggestions(w.svc, security, "prod") == {"env": "API_URL"}
    w.env.unreadable = True  # a provider that cannot answer leaves the field to the person
    assert decide.suggestions(w.svc, security, "prod") == {}
    feature = decide.decision(w.svc, "Feature broken", None)
    w.flags.items["promo_banner"] = "50% off"
    assert decide.suggestions(w.svc, feature, "prod") == {"flag": "promo_banner"}
    assert decide.suggestions(w.svc, feature, "staging") == {}  # no edge_config there


def test_a_provider_error_in_a_suggestion_is_not_raised(w: FakeWorld) -> None:
    w.flags.unreadable = True
    assert decide.suggestions(w.svc, decide.decision(w.svc, "Feature broken", None), "prod") == {}


def test_a_client_that_cannot_be_built_leaves_the_field_to_the_person(w: FakeWorld,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_client(*_args: object) -> None:  # as the web's Vercel client does when its build fails
        raise OSError("could not load the CA certificates")

    feature = decide.decision(w.svc, "Feature broken", None)
    w.flags.items["promo_banner"] = "50% off"
    assert decide.suggestions(w.svc, feature, "prod") == {"flag": "promo_banner"}
    monkeypatch.setattr(w.flags, "flag_items", no_client)
    assert decide.suggestions(w.svc, feature, "prod") == {}


def test_the_incident_records_the_row_and_is_measured_against_its_target(w: FakeWorld) -> None:
    incident = request_rollback(w.svc, ALICE, Rollback("code", "prod", "slow", {}, issue="Performance",
                                                       severity="Critical"))
    assert (incident.issue, incident.severity) == ("Performance", "Critical")
    assert [e.detail.get("issue") for e in w.store.audit_log(incident.id) if e.action == "request.code"] == ["Performance"]


@pytest.mark.parametrize("suggested", [None, {}, {"env": "API_URL"}])
def test_the_forms_are_valid_and_say_what_was_filled_in(w: FakeWorld, suggested: dict[str, str] | None) -> None:
    security = decide.decision(w.svc, "Security", "High")
    form = request_form(security, list(w.svc.policy.environments), "prod", suggested, "a reason")
    View(**form).validate_json()
    env_block = next(b for b in form["blocks"] if b.get("block_id", "").startswith("args-env"))
    assert env_block["block_id"] == args_block("env", bool(suggested))
    hint = env_block["hint"]["text"]
    if suggested is None:
        assert hint == "Looking up what changed…"
    elif suggested:
        assert env_block["element"]["initial_value"] == "API_URL" and hint.startswith("Filled in by Rollbot")
    else:
        assert "initial_value" not in env_block["element"] and hint == "Rollbot could not tell; fill it in."
    code_block = next(b for b in form["blocks"] if b.get("block_id", "").startswith("args-code"))
    assert "hint" not in code_block  # nothing to look up: empty means the last known good deployment
    for view in (decide_modal(), decide_modal("Security", "High"), decide_modal("Security", available=False)):
        View(**view).validate_json()
    assert "decide_start" not in str(decide_modal("Security", available=False))
