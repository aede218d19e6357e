"""The feature-flag rollback kind (Vercel Edge Config, "Global Config"): one flag to its off value.

Plan: the flag's current value, read from the environment's Edge Config, and its off value (the
configured ``off``; ``false`` for a boolean flag). Execute: one PATCH of that item only; after an
unknown outcome, read back before sending again (an update is idempotent, but the rule holds).
Wait until the new value is visible (Edge Config propagates within seconds). Verify: the flag
reads its off value. Only this module and its adapter (``integrations.edge_config``) know Edge
Config.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, Protocol

from handlers.commands import CommandError
from handlers.config import Environment
from handlers.kind import RollbackFailed, Run, Step, Verification
from handlers.plans import PlanBase
from handlers.ports import ProviderError
from handlers.services import Refused
from handlers.text import escape

STEP_UPDATE = Step("flag.update", "Set the flag to its off value")
STEP_VISIBLE = Step("flag.visible", "The new value is visible")
MISSING = object()


class FlagProvider(Protocol):
    def flag_items(self, config_id: str) -> dict[str, Any]:
        """Every item of the Edge Config, key -> value (as reads see them now)."""

    def set_flag(self, config_id: str, key: str, value: Any) -> None:
        """One PATCH updating that item only; never retried inside."""


def same(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`, `false` is not `0` (Python's == says they are)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def show(value: Any) -> str:
    """A flag value as people read it: JSON (`false`, `""`, `"on"`), cut with an ellipsis."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:79] + "…"


class FlagPlan(PlanBase):
    kind: Literal["flag"] = "flag"
    edge_config: str
    key: str
    from_value: Any
    to_value: Any

    @property
    def target(self) -> str:
        return self.key

    @property
    def change(self) -> tuple[str, str]:
        return show(self.from_value), show(self.to_value)


class FlagKind:
    name: str = "flag"
    words: tuple[str, ...] = ("flag", "feature")
    title: str = "Feature flag rollback"
    usage: str = "/rollback flag  <env> <flag-key>         [reason]   turn a feature flag off (Edge Config)"
    plan_model: type[PlanBase] = FlagPlan
    target: timedelta = timedelta(minutes=1)
    risk: str = "Low"
    lease: timedelta = timedelta(seconds=30)
    steps: tuple[Step, ...] = (STEP_UPDATE, STEP_VISIBLE)
    ticks: tuple[str, ...] = ("known_good",)  # a flag's off value is its known good state
    checklist: tuple[str, ...] = ()
    next_step: str = ("Runbook, feature flag: open Vercel → Storage → Edge Config, set the flag to its off value "
                      "and save; then check the feature is off and monitor for 15 minutes.")

    def __init__(self, provider: FlagProvider, *, visible_timeout: float = 30.0, uncertain_window: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.provider = provider
        self.visible_timeout = visible_timeout
        self.uncertain_window = uncertain_window
        self._sleep = sleep
        self._monotonic = monotonic

    # -- request -----------------------------------------------------------------------------

    def parse(self, env: str, words: Sequence[str]) -> tuple[dict[str, Any], str]:
        if not words:
            raise CommandError(f"`flag {escape(env)}` needs the flag's key: `/rollback flag {escape(env)} "
                               "new_checkout reason…`.")
        return {"key": words[0]}, " ".join(words[1:])

    def configured(self, env: Environment) -> str | None:
        return None if env.edge_config else "has no `edge_config` configured, so flag rollbacks are off"

    def plan(self, env_name: str, env: Environment, args: Mapping[str, Any]) -> FlagPlan:
        assert env.edge_config is not None
        key = str(args["key"])
        items = self.provider.flag_items(env.edge_config)
        if key not in items:
            close = difflib.get_close_matches(key, list(items), n=3, cutoff=0.5)
            hint = (" Did you mean " + ", ".join(f"`{escape(c)}`" for c in close) + "?") if close else ""
            raise Refused(f"`{escape(key)}` is not a flag in Edge Config `{env.edge_config}`.{hint}")
        current = items[key]
        spec = env.flags.get(key)
        if spec is not None and spec.has_off:
            off = spec.off
        elif isinstance(current, bool):
            off = False
        else:
            raise Refused(
                f"`{escape(key)}` is not a boolean flag (it holds {escape(show(current))}), so Rollbot does not know "
                f"its off value. Add it to the policy file: `flags = {{ {escape(key)} = {{ off = … }} }}` under "
                f"`[environments.{escape(env_name)}]`.")
        if same(current, off):
            raise Refused(f"`{escape(key)}` is already {escape(show(off))} (its off value); nothing to roll back.")
        return FlagPlan(env=env_name, edge_config=env.edge_config, key=key, from_value=current, to_value=off)

    def replan(self, plan: PlanBase, env: Environment) -> FlagPlan:
        assert isinstance(plan, FlagPlan)
        return self.plan(plan.env, env, {"key": plan.key})

    # -- execution ---------------------------------------------------------------------------

    def execute(self, plan: PlanBase, run: Run) -> str:
        assert isinstance(plan, FlagPlan)
        run.step(STEP_UPDATE.name)
        current = self._read(plan)
        run.audit("edge_config.read", "ok", key=plan.key, value=show(current))
        if same(current, plan.to_value):
            run.audit(STEP_UPDATE.name, "skipped", why="the flag already holds its off value")
            done = "the flag was already off"
        elif run.unresolved_attempt and self._took_hold(plan, run, "a previous executor sent it and stopped"):
            done = "set by a previous executor (confirmed by reading it back)"
        elif not same(current, plan.from_value):
            raise RollbackFailed(
                f"`{plan.key}` changed to {show(current)} after {run.incident_ref} was approved (the approved plan was "
                f"{show(plan.from_value)} → {show(plan.to_value)}); nothing was changed. Request the rollback again.")
        else:
            done = self._send(plan, run)
        run.finish(STEP_UPDATE.name, "ok", f"{done}: {plan.key} = {show(plan.to_value)}")
        run.step(STEP_VISIBLE.name)
        if not self._wait_visible(plan, run, self.visible_timeout):
            raise ProviderError(f"Edge Config did not show `{plan.key}` = {show(plan.to_value)} within "
                                f"{int(self.visible_timeout)}s")
        run.finish(STEP_VISIBLE.name, "ok", "reads show the new value")
        return done

    def _send(self, plan: FlagPlan, run: Run, attempts: int = 3) -> str:
        for attempt in range(1, attempts + 1):
            run.hold()
            run.audit(STEP_UPDATE.name, "attempt", key=plan.key, to=show(plan.to_value))
            try:
                self.provider.set_flag(plan.edge_config, plan.key, plan.to_value)
            except ProviderError as error:
                run.audit(STEP_UPDATE.name, "uncertain" if error.uncertain else "refused", error=error.message,
                          status=error.status)
                if error.uncertain:
                    if self._took_hold(plan, run, error.message):
                        return "set (confirmed by reading it back after an uncertain answer)"
                elif not error.refused_for_now:
                    raise
                if attempt == attempts:
                    raise RollbackFailed(f"setting `{plan.key}` failed {attempts} times ({error.message}); reading it "
                                         "back shows none of them took effect.") from None
                self._sleep(min(error.retry_after or 1.0 * attempt, 10.0))
                continue
            run.audit(STEP_UPDATE.name, "ok", key=plan.key, to=show(plan.to_value))
            return "set"
        raise AssertionError("unreachable")

    def _took_hold(self, plan: FlagPlan, run: Run, why: str) -> bool:
        """After an unknown outcome: does the flag show the new value within the window?"""
        if self._wait_visible(plan, run, self.uncertain_window):
            run.audit(STEP_UPDATE.name, "ok", why=f"took effect despite: {why}")
            return True
        run.audit(STEP_UPDATE.name, "not_taken", why=f"still {show(plan.from_value)} after {self.uncertain_window:g}s")
        return False

    def _wait_visible(self, plan: FlagPlan, run: Run, within: float) -> bool:
        deadline = self._monotonic() + within
        interval = 0.1
        while True:
            run.hold()
            try:
                if same(self._read(plan), plan.to_value):
                    return True
            except ProviderError:
                pass  # a read that failed says nothing; keep looking until the deadline
            if self._monotonic() >= deadline:
                return False
            self._sleep(interval)
            interval = min(interval * 2, 2.0)

    def _read(self, plan: FlagPlan) -> Any:
        value = self.provider.flag_items(plan.edge_config).get(plan.key, MISSING)
        if value is MISSING:
            raise RollbackFailed(f"`{plan.key}` is no longer in Edge Config `{plan.edge_config}`; nothing was changed.")
        return value

    def took_effect(self, plan: PlanBase) -> bool:
        assert isinstance(plan, FlagPlan)
        value = self.provider.flag_items(plan.edge_config).get(plan.key, MISSING)
        return value is not MISSING and same(value, plan.to_value)

    def verify(self, plan: PlanBase) -> Verification:
        assert isinstance(plan, FlagPlan)
        value = self.provider.flag_items(plan.edge_config).get(plan.key, MISSING)
        facts = {"key": plan.key, "value": None if value is MISSING else show(value)}
        if value is MISSING:
            return Verification(False, f"{plan.key} is no longer in Edge Config", facts)
        if not same(value, plan.to_value):
            return Verification(False, f"{plan.key} reads {show(value)}, not {show(plan.to_value)}", facts)
        return Verification(True, f"{plan.key} reads {show(value)}", facts)
