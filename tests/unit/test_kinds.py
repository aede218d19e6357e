"""The seam: the registry of kinds, typed plans validated on load, and the grammar each kind
brings to /rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.code import CodeKind, CodePlan
from handlers.commands import CommandError, Rollback, parse, usage
from handlers.kind import KindRegistry, RollbackKind
from handlers.plans import PlanError
from tests.fakes.ports import deployment
from tests.fakes.world import fake_world
from tests.kinds.switch import SwitchKind, SwitchPlan

CODE = CodeKind(provider=None)  # type: ignore[arg-type]
SWITCH = SwitchKind(Path("/nonexistent"))


def _registry() -> KindRegistry:
    return KindRegistry([CODE, SWITCH])


def _plan() -> CodePlan:
    return CodePlan(env="prod", project="prj", from_deployment=deployment("dpl_bad", 30),
                    to_deployment=deployment("dpl_good", 120))


def test_both_kinds_implement_the_protocol() -> None:
    assert isinstance(CODE, RollbackKind) and isinstance(SWITCH, RollbackKind)
    assert _registry().names() == ("code", "switch")


def test_a_stored_plan_comes_back_as_its_kinds_model() -> None:
    registry = _registry()
    for plan in (_plan(), SwitchPlan(env="prod", name="checkout", from_value="on")):
        loaded = registry.load_plan(plan.to_json())
        assert type(loaded) is type(plan) and loaded == plan and loaded.hash == plan.hash


@pytest.mark.parametrize("stored, message", [
    ({"kind": "database", "env": "prod"}, "of kind 'database', which this Rollbot does not know (known: code, switch)"),
    ({"env": "prod"}, "must be an object with a 'kind'"),
    (["code"], "must be an object with a 'kind'"),
    ({"kind": "code", "env": "prod", "project": "prj"}, "a stored code plan is malformed (from_deployment: Field required"),
    ({"kind": "switch", "env": "prod", "name": "x", "from_value": "on", "extra": 1}, "extra: Extra inputs are not permitted"),
    ({"kind": "code", "env": "prod", "project": "prj", "from_deployment": {"uid": "d"}, "to_deployment": {}},
     "malformed"),
])
def test_an_unknown_or_malformed_stored_plan_is_a_clear_error(stored: object, message: str) -> None:
    with pytest.raises(PlanError) as error:
        _registry().load_plan(stored)
    assert message in str(error.value)


def test_the_hash_binds_what_the_plan_does_not_how_it_is_described() -> None:
    plan = _plan()
    reworded = plan.model_copy(update={"to_deployment": plan.to_deployment.model_copy(
        update={"commit_message": "reworded", "author": "someone"})})
    assert reworded.hash == plan.hash
    other = plan.model_copy(update={"to_deployment": deployment("dpl_old", 300)})
    assert other.hash != plan.hash
    assert plan.model_copy(update={"env": "staging"}).hash != plan.hash


def test_registration_refuses_clashes() -> None:
    registry = _registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(CodeKind(provider=None))  # type: ignore[arg-type]
    clash = SwitchKind(Path("/x"))
    clash.name, clash.words = "other", ("code",)  # type: ignore[misc]
    with pytest.raises(ValueError):
        KindRegistry([CODE]).register(clash)
    with pytest.raises(TypeError, match="does not implement RollbackKind"):
        registry.register(object())  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no rollback kind named 'flag'"):
        registry["flag"]


def test_each_kind_parses_its_own_arguments(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    kinds, policy = w.svc.kinds, w.svc.policy
    assert parse("sw prod checkout it broke", policy, kinds) == Rollback("switch", "prod", "it broke", {"name": "checkout"})
    assert parse("code prod dpl_abc why", policy, kinds) == Rollback("code", "prod", "why", {"deployment": "dpl_abc"})
    with pytest.raises(CommandError, match="needs the switch name"):
        parse("switch prod", policy, kinds)
    assert "/rollback switch" in usage(kinds) and "/rollback code" in usage(kinds)
    assert "/rollback switch" not in usage(KindRegistry([CODE]))
    with pytest.raises(CommandError, match="Did you mean `switch`"):
        parse("swich prod", policy, kinds)
