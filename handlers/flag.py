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
STEP_VISIBLE = Step("flag.visible", "The new value reads back")
MISSING = object()


class FlagProvider(Protocol):
    def flag_items(self, config_id: str) -> dict[str, Any]:
        """Every item of the Edge Config, key -> value (as reads see them now)."""

    def set_flag(self, config_id: str, key: str, value: Any) -> None:
        """One PATCH updating that item only; never retried inside."""


def same(a: Any, b: Any) -> bool:
    """JSON equality: booleans only equal booleans (Python's `True == 1` does not hold here),
    numbers compare by value (`0` is `0.0`, as JavaScript stores them), objects and arrays
    recursively."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def json_type(value: Any) -> str:
    """The JSON type of a value, as people call it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else type(value).__name__


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
        if current is not None and json_type(off) != json_type(current):
            raise Refused(
                f"`{escape(key)}` holds a {json_type(current)} ({escape(show(current))}), but its configured off "
                f"value is a {json_type(off)} ({escape(show(off))}); writing it would change the flag's type. Fix "
                f"`flags.{escape(key)}.off` under `[environments.{escape(env_name)}]`.")
        if same(current, off):
            raise Refused(f"`{escape(key)}` is already {escape(show(off))} (its off value); nothing to roll back.")
        return FlagPlan(env=env_name, edge_config=env.edge_config, key=key, from_value=current, to_value=off)

    def suggest(self, env_name: str, env: Environment) -> str | None:
        """The one configured flag that is not off now, if exactly one is (else the person picks)."""
        assert env.edge_config is not None
        items = self.provider.flag_items(env.edge_config)
        on = [key for key, spec in env.flags.items() if key in items
              and not same(items[key], spec.off if spec.has_off else False)]
        return on[0] if len(on) == 1 else None

    def replan(self, plan: PlanBase, env: Environment) -> FlagPlan:
        assert isinstance(plan, FlagPlan)
        current = self.provider.flag_items(plan.edge_config).get(plan.key, MISSING)
        if current is not MISSING and same(current, plan.to_value):
            return plan  # turned off by hand meanwhile: the approved plan stands; execute only verifies
        return self.plan(plan.env, env, {"key": plan.key})

    # -- execution ---------------------------------------------------------------------------

    def execute(self, plan: PlanBase, run: Run) -> str:
        assert isinstance(plan, FlagPlan)
        run.step(STEP_UPDATE.name)
        current = self._read(plan)
        if current is MISSING:
            raise RollbackFailed(f"`{plan.key}` is no longer in Edge Config `{plan.edge_config}`; nothing was changed.")
        run.audit("edge_config.read", "ok", key=plan.key, value=show(current))
        if same(current, plan.to_value):
            run.audit(STEP_UPDATE.name, "skipped", why="the flag already holds its off value")
            done = "the flag already held its off value"
        elif not same(current, plan.from_value):
            if run.unresolved_attempt:  # our earlier write may have landed, and someone wrote after it
                raise ProviderError(f"`{plan.key}` reads {show(current)}, neither the approved {show(plan.from_value)} "
                                    f"nor {show(plan.to_value)}; an earlier attempt was sent, so it is not sent again.")
            raise RollbackFailed(
                f"`{plan.key}` changed to {show(current)} after {run.incident_ref} was approved (the approved plan was "
                f"{show(plan.from_value)} → {show(plan.to_value)}); nothing was changed. Request the rollback again.")
        elif run.unresolved_attempt and (outcome := self._settle(plan, run, self.uncertain_window)) != "still":
            if outcome != "took":
                raise ProviderError(f"`{plan.key}` reads {outcome} after an earlier executor's unanswered update; it is "
                                    "not sent again.", uncertain=True)
            run.audit(STEP_UPDATE.name, "ok", why="a previous executor's update took effect")
            done = "set by a previous executor (confirmed by reading it back)"
        else:
            done = self._send(plan, run)
        run.finish(STEP_UPDATE.name, "ok", f"{done}: {plan.key} = {show(plan.to_value)}")
        run.step(STEP_VISIBLE.name)
        if self._settle(plan, run, self.visible_timeout) != "took":
            raise ProviderError(f"Edge Config did not read `{plan.key}` = {show(plan.to_value)} within "
                                f"{int(self.visible_timeout)}s")
        run.finish(STEP_VISIBLE.name, "ok", "the API reads the new value")
        return done

    def _send(self, plan: FlagPlan, run: Run, attempts: int = 3) -> str:
        """Send the update. After an unknown outcome it is sent again only when a fresh read shows
        the flag still holds the approved value (never over someone else's change)."""
        for attempt in range(1, attempts + 1):
            run.hold()
            run.audit(STEP_UPDATE.name, "attempt", key=plan.key, to=show(plan.to_value))
            try:
                self.provider.set_flag(plan.edge_config, plan.key, plan.to_value)
            except ProviderError as error:
                run.audit(STEP_UPDATE.name, "uncertain" if error.uncertain else "refused", error=error.message,
                          status=error.status)
                if error.uncertain:
                    outcome = self._settle(plan, run, self.uncertain_window)
                    if outcome == "took":
                        run.audit(STEP_UPDATE.name, "ok", why=f"took effect despite: {error.message}")
                        return "set (confirmed by reading it back after an uncertain answer)"
                    if outcome != "still":
                        raise ProviderError(f"after an unanswered update `{plan.key}` reads {outcome}, neither the "
                                            f"approved {show(plan.from_value)} nor {show(plan.to_value)}; it is not "
                                            "sent again.", uncertain=True) from None
                    run.audit(STEP_UPDATE.name, "not_taken",
                              why=f"still {show(plan.from_value)} after {self.uncertain_window:g}s")
                    if attempt == attempts:
                        raise ProviderError(f"setting `{plan.key}` went unanswered {attempts} times ({error.message})",
                                            uncertain=True) from None
                    continue
                if not error.refused_for_now:
                    raise
                if attempt == attempts:
                    raise RollbackFailed(f"Vercel refused to set `{plan.key}` {attempts} times ({error.message}); "
                                         "nothing was changed.") from None
                self._sleep(min(error.retry_after or 1.0 * attempt, 10.0))
                continue
            run.audit(STEP_UPDATE.name, "ok", key=plan.key, to=show(plan.to_value))
            return "set"
        raise AssertionError("unreachable")

    def _settle(self, plan: FlagPlan, run: Run, within: float) -> str:
        """Read the flag until it holds the new value ("took"), or until ``within`` runs out:
        "still" when it holds the approved value, else what it reads (someone else wrote it)."""
        deadline = self._monotonic() + within
        interval = 0.1
        last: Any = plan.from_value
        while True:
            run.hold()
            try:
                last = self._read(plan)
            except ProviderError:
                pass  # a read that failed says nothing; keep looking until the deadline
            else:
                if last is not MISSING and same(last, plan.to_value):
                    return "took"
            if self._monotonic() >= deadline:
                if last is not MISSING and same(last, plan.from_value):
                    return "still"
                return "missing" if last is MISSING else show(last)
            self._sleep(interval)
            interval = min(interval * 2, 2.0)

    def _read(self, plan: FlagPlan) -> Any:
        """The flag's value now, or MISSING."""
        return self.provider.flag_items(plan.edge_config).get(plan.key, MISSING)

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
