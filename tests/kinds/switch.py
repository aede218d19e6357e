"""A rollback kind that exists only in the test suite: turn a named switch off.

Its "provider" is a directory of small files, one per switch, holding the switch's value; the
tests read and change it directly. Loaded into the real processes through ROLLBOT_KINDS
(``tests.kinds.switch:kind``), it proves the generic driver runs any kind end to end.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from handlers.commands import CommandError
from handlers.config import Environment
from handlers.kind import RollbackFailed, Run, Step, Verification
from handlers.plans import PlanBase
from handlers.ports import ProviderError
from handlers.services import Refused

DIR_ENV = "ROLLBOT_TEST_SWITCH_DIR"
STEP_FLIP = Step("switch.flip", "Turn the switch off")


class SwitchPlan(PlanBase):
    kind: Literal["switch"] = "switch"
    name: str
    from_value: str
    to_value: str = "off"

    @property
    def target(self) -> str:
        return self.name

    @property
    def change(self) -> tuple[str, str]:
        return self.from_value, self.to_value


class SwitchKind:
    name: str = "switch"
    words: tuple[str, ...] = ("switch", "sw")
    title: str = "Switch rollback"
    usage: str = "/rollback switch <env> <name>           [reason]   turn a test switch off"
    plan_model: type[PlanBase] = SwitchPlan
    target: timedelta = timedelta(minutes=1)
    risk: str = "Low"
    lease: timedelta = timedelta(seconds=10)
    steps: tuple[Step, ...] = (STEP_FLIP,)
    ticks: tuple[str, ...] = ("known_good",)  # "off" is known good by definition
    checklist: tuple[str, ...] = ()
    next_step: str = "Runbook: write `off` into the switch by hand."

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / name

    def parse(self, env: str, words: Sequence[str]) -> tuple[dict[str, Any], str]:
        if not words:
            raise CommandError(f"`switch {env}` needs the switch name: `/rollback switch {env} checkout reason…`.")
        return {"name": words[0]}, " ".join(words[1:])

    def configured(self, env: Environment) -> str | None:
        return None if self.directory.is_dir() else f"has no switch directory ({DIR_ENV})"

    def plan(self, env_name: str, env: Environment, args: Mapping[str, Any]) -> SwitchPlan:
        name = str(args["name"])
        if not name.isidentifier():
            raise Refused(f"`{name[:40]}` is not a switch name.")
        current = self._read(name)
        if current == "off":
            raise Refused(f"switch `{name}` is already off; nothing to roll back.")
        return SwitchPlan(env=env_name, name=name, from_value=current)

    def replan(self, plan: PlanBase, env: Environment) -> SwitchPlan:
        assert isinstance(plan, SwitchPlan)
        return self.plan(plan.env, env, {"name": plan.name})

    def execute(self, plan: PlanBase, run: Run) -> str:
        assert isinstance(plan, SwitchPlan)
        run.step(STEP_FLIP.name)
        current = self._read(plan.name)
        if current == plan.to_value:
            run.audit(STEP_FLIP.name, "skipped", why="already off")
        elif current != plan.from_value:
            raise RollbackFailed(f"switch `{plan.name}` is `{current}` now, not `{plan.from_value}`; nothing was changed.")
        else:
            run.hold()
            run.audit(STEP_FLIP.name, "attempt", to=plan.to_value)
            self._path(plan.name).write_text(plan.to_value)
            run.audit(STEP_FLIP.name, "ok", to=plan.to_value)
        run.finish(STEP_FLIP.name, "ok", f"{plan.name} is {plan.to_value}")
        return "switched off"

    def took_effect(self, plan: PlanBase) -> bool:
        assert isinstance(plan, SwitchPlan)
        return self._read(plan.name) == plan.to_value

    def verify(self, plan: PlanBase) -> Verification:
        assert isinstance(plan, SwitchPlan)
        value = self._read(plan.name)
        return Verification(value == plan.to_value, f"switch {plan.name} reads {value}", {"value": value})

    def _read(self, name: str) -> str:
        try:
            return self._path(name).read_text().strip()
        except FileNotFoundError:
            raise Refused(f"there is no switch named `{name}`.") from None
        except OSError as error:
            raise ProviderError(f"cannot read switch {name}: {error.strerror}") from None


def kind(settings: object) -> SwitchKind:
    """The ROLLBOT_KINDS factory."""
    return SwitchKind(Path(os.environ.get(DIR_ENV, "/nonexistent")))
