"""The env-var rollback kind (Vercel): restore named production variables from a snapshot, then
redeploy production so they take effect.

Plan: for each named key, the snapshot's value against the value now, shown only as fingerprints
(changed, or re-created when it was removed since); the other keys added or removed since the
snapshot, left alone; the production deployment that will be rebuilt. Refused with the reason:
no snapshot, a key not in the snapshot, a sensitive key, a snapshot the key cannot open.
Execute: a snapshot of the values now (so this rollback can be undone), then each key set once
(read back first after an unknown outcome), then one redeploy of the production deployment,
tagged with the plan so an unanswered one is found instead of sent again; wait until it is READY
and serving (promoted, when production is pinned by an instant rollback). Verify: every key reads
back as in the snapshot and production serves the rebuilt deployment. Its plan model is in
``handlers.env_plan``, its snapshots in ``handlers.env_snapshots``, the redeploy in
``handlers.env_redeploy``; its adapter is ``integrations.vercel_env``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from handlers.commands import CommandError
from handlers.config import Environment
from handlers.durations import format_duration
from handlers.env_plan import EnvChange, EnvPlan, after_earlier, changed_keys, choose_snapshot
from handlers.env_redeploy import STEP_REDEPLOY, ProductionRedeploy, Redeploys, watch
from handlers.env_snapshots import (
    SENSITIVE,
    EnvReader,
    EnvSnapshots,
    EnvVar,
    SnapshotUnreadable,
    listing,
    production_vars,
    snapshot_due,
    take,
)
from handlers.kind import RollbackFailed, Run, Step, Verification
from handlers.plans import PlanBase
from handlers.ports import ProviderError
from handlers.services import Refused
from handlers.text import escape

STEP_SNAPSHOT = Step("env.snapshot", "Snapshot the values now")
STEP_RESTORE = Step("env.restore", "Restore the variables")
STEP_SERVING = Step("env.serving", "The new deployment is READY and serving")
KEY = re.compile(r"^[A-Z_][A-Z0-9_]+$")  # as typed: UPPER_CASE, two characters at least (a reason's "I" is not one)
SNAPSHOT_REF = re.compile(r"^S-?(\d+)$", re.IGNORECASE)
UNREADABLE = "(unreadable)"  # what a sensitive variable reads as: never equal to a fingerprint


class EnvProvider(EnvReader, Redeploys, Protocol):
    def set_env_value(self, project: str, env_id: str, value: str) -> None:
        """One PATCH of that variable's value; never retried inside."""

    def create_env(self, project: str, key: str, value: str, type: str, target: Sequence[str]) -> None:
        """One POST creating the variable; never retried inside."""


class EnvKind:
    name: str = "env"
    words: tuple[str, ...] = ("env", "config")
    title: str = "Env-var rollback"
    usage: str = ("/rollback env   <env> <KEY>[ <KEY>…] [from S-<id>] [reason]   restore env vars from a snapshot, "
                  "redeploy\n/rollback env   <env> list                          the env-var snapshots")
    plan_model: type[PlanBase] = EnvPlan
    target: timedelta = timedelta(minutes=5)
    risk: str = "Low"
    lease: timedelta = timedelta(seconds=60)
    steps: tuple[Step, ...] = (STEP_SNAPSHOT, STEP_RESTORE, STEP_REDEPLOY, STEP_SERVING)
    ticks: tuple[str, ...] = ("known_good",)  # the snapshot is the known good state
    checklist: tuple[str, ...] = ()
    queries: tuple[str, ...] = ("list",)
    next_step: str = ("Runbook, environment variables: open Vercel → Project → Settings → Environment Variables, "
                      "set the variables back to their previous values (`/rollback env <env> list` shows the "
                      "snapshots; the values themselves are only in Vercel and your records), redeploy production, "
                      "verify the configuration and monitor for 15 minutes.")

    def __init__(self, provider: EnvProvider, snapshots: EnvSnapshots, now: Callable[[], datetime], *,
                 build_timeout: float = 900.0, serve_timeout: float = 120.0, uncertain_window: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.provider = provider
        self.snapshots = snapshots
        self._now = now
        self.build_timeout = build_timeout
        self.serve_timeout = serve_timeout
        self.uncertain_window = uncertain_window
        self._sleep = sleep
        self._monotonic = monotonic
        self.redeploys = ProductionRedeploy(provider, build_timeout=build_timeout, serve_timeout=serve_timeout,
                                            uncertain_window=uncertain_window, sleep=sleep, monotonic=monotonic)
        self._failures: dict[str, tuple[int, datetime]] = {}  # project -> (failed snapshots in a row, next try)

    # -- request -----------------------------------------------------------------------------

    def parse(self, env: str, words: Sequence[str]) -> tuple[dict[str, Any], str]:
        keys: list[str] = []
        rest = list(words)
        while rest and KEY.match(rest[0]):
            keys.append(rest.pop(0))
        if not keys:
            raise CommandError(f"`env {escape(env)}` needs at least one variable name in UPPER_CASE, or `list`: "
                               f"`/rollback env {escape(env)} API_URL FEATURE_X reason…`.")
        args: dict[str, Any] = {"keys": tuple(dict.fromkeys(keys))}
        if len(rest) >= 2 and rest[0].lower() == "from":
            match = SNAPSHOT_REF.match(rest[1])
            if not match:
                raise CommandError(f"`{escape(rest[1])}` is not a snapshot; name one like `S-12` "
                                   f"(`/rollback env {escape(env)} list` shows them).")
            args["snapshot"] = int(match.group(1))
            rest = rest[2:]
        return args, " ".join(rest)

    def configured(self, env: Environment) -> str | None:
        if not env.vercel_project:
            return "has no `vercel_project` configured, so env rollbacks are off"
        if env.env_snapshot_every is None:
            return "has no `env_snapshot_every` configured, so no env-var snapshots are taken and env rollbacks are off"
        unavailable = self.snapshots.unavailable()
        return f"cannot use its env-var snapshots: {unavailable}" if unavailable else None

    def query(self, env_name: str, env: Environment, words: Sequence[str]) -> str:
        """`/rollback env <env> list`."""
        assert env.vercel_project is not None
        try:
            return listing(self.snapshots, env.vercel_project, env_name, self._now())
        except SnapshotUnreadable as error:
            raise Refused(error.message) from None

    def plan(self, env_name: str, env: Environment, args: Mapping[str, Any]) -> EnvPlan:
        assert env.vercel_project is not None
        return self._resolve(env_name, env.vercel_project, tuple(args["keys"]), args.get("snapshot"))

    def replan(self, plan: PlanBase, env: Environment) -> EnvPlan:
        assert isinstance(plan, EnvPlan)
        if self._all_restored(plan):  # set by hand meanwhile: the approved plan stands; execute checks
            return plan
        return self._resolve(plan.env, plan.project, plan.keys, plan.snapshot_id, named=plan.snapshot_named,
                             request=plan.request)

    def _resolve(self, env_name: str, project: str, keys: tuple[str, ...], snapshot_id: int | None, *,
                 named: bool | None = None, request: str | None = None) -> EnvPlan:
        now_vars = self._by_key(project)
        current = {key: self._value(project, now_vars[key]) for key in keys if key in now_vars}
        snapshot = choose_snapshot(self.snapshots, project, keys, snapshot_id, current, now_vars)
        changes, unchanged = [], []
        for key in keys:
            old = snapshot.get(key)
            if old is None:
                raise Refused(f"`{escape(key)}` is not in snapshot `{snapshot.info.ref}` of `{project}` (taken "
                              f"{self._ago(snapshot.info.taken_at)} ago): it was added after it, or never existed. "
                              "Remove or change it in Vercel by hand.")
            if old.value is None:
                raise Refused(f"`{escape(key)}` is a sensitive variable: Vercel never returns its value, so no "
                              "snapshot holds it and Rollbot cannot restore it. Set it in Vercel by hand.")
            var = now_vars.get(key)
            if var is not None and current[key] is None:
                raise Refused(f"`{escape(key)}` cannot be read now (it is sensitive, or Vercel did not decrypt it), so "
                              "Rollbot could not verify a restore. Set it in Vercel by hand.")
            to_fp = self._fp(project, key, old.value)
            if var is None:
                changes.append(EnvChange(key=key, action="create", env_id=None, type=old.type, target=old.target,
                                         from_fp=None, to_fp=to_fp))
            elif current[key] == old.value:
                unchanged.append(key)
            else:
                changes.append(EnvChange(key=key, action="change", env_id=var.id, type=var.type, target=var.target,
                                         from_fp=self._fp(project, key, current[key] or ""), to_fp=to_fp))
        if not changes:
            raise Refused(f"{', '.join(f'`{escape(k)}`' for k in keys)} already hold the values of snapshot "
                          f"`{snapshot.info.ref}`; nothing to restore.")
        since = [f"{k} added" for k in sorted(now_vars) if snapshot.get(k) is None and k not in keys]
        since += [f"{v.key} removed" for v in snapshot.vars if v.key not in now_vars and v.key not in keys]
        production = self.provider.production(project)
        if not production.deployment:
            raise Refused(f"Vercel reports no production deployment for `{project}` to redeploy with the restored "
                          "values.")
        return EnvPlan(env=env_name, project=project, snapshot_id=snapshot.info.id,
                       snapshot_at=snapshot.info.taken_at, snapshot_named=bool(named if named is not None
                                                                               else snapshot_id is not None),
                       keys=keys, changes=tuple(changes), unchanged=tuple(unchanged), since=tuple(since),
                       deployment=production.deployment, project_name=production.name, promote=production.pinned,
                       request=request or uuid.uuid4().hex[:12])

    def suggest(self, env_name: str, env: Environment) -> str | None:
        assert env.vercel_project is not None
        project = env.vercel_project
        return " ".join(changed_keys(self.snapshots, project, self._by_key(project),
                                     lambda var: self._value(project, var))) or None

    def after(self, plan: PlanBase, earlier: Sequence[PlanBase]) -> PlanBase:
        assert isinstance(plan, EnvPlan)
        return after_earlier(plan, earlier)

    # -- execution ---------------------------------------------------------------------------

    def execute(self, plan: PlanBase, run: Run) -> str:
        assert isinstance(plan, EnvPlan)
        run.step(STEP_SNAPSHOT.name)
        try:
            snapshot = self.snapshots.load(plan.snapshot_id)
        except SnapshotUnreadable as error:
            raise RollbackFailed(f"snapshot S-{plan.snapshot_id} cannot be opened: {error.message}. Nothing was "
                                 "changed.") from None
        if snapshot is None:
            raise RollbackFailed(f"snapshot S-{plan.snapshot_id} is gone; nothing was changed.")
        reason = f"before {run.incident_ref}"
        taken = next((info for info in self.snapshots.snapshots(plan.project, 20) if info.reason == reason), None)
        if taken is None:  # (a resumed execution keeps the one its first run took: it holds the values before)
            taken, _ = take(self.provider, self.snapshots, plan.project, self._now(), reason, always=True)
        before = taken
        run.audit(STEP_SNAPSHOT.name, "ok", snapshot=before.ref, variables=before.variables)
        run.finish(STEP_SNAPSHOT.name, "ok", f"{before.ref}: {before.variables} variables as they were")

        run.step(STEP_RESTORE.name)
        todo = self._check_all(plan, run)  # every key checked before the first is changed: all or nothing
        for change in todo:
            value = snapshot.get(change.key)
            assert value is not None and value.value is not None
            self._restore(plan, change, value.value, run)
        kept = len(plan.changes) - len(todo)
        run.finish(STEP_RESTORE.name, "ok", f"{len(todo)} restored from S-{plan.snapshot_id}"
                   + (f", {kept} already held it" if kept else ""))

        try:
            run.step(STEP_REDEPLOY.name)
            uid = self.redeploys.send(run, plan.project, plan.project_name, plan.deployment, plan.tag)
            run.finish(STEP_REDEPLOY.name, "ok", f"{uid}, rebuilt from {plan.deployment}")
            run.step(STEP_SERVING.name)
            self.redeploys.wait_built(uid, run)
            self.redeploys.wait_serving(plan.project, uid, run)
        except ProviderError as error:  # say where things stand: the values are in, production may not have them
            keys = ", ".join(c.key for c in plan.changes)
            raise ProviderError(f"{keys} are restored in Vercel, but production may still run the old values: "
                                f"{error.message}", code=error.code, status=error.status,
                                uncertain=error.uncertain) from None
        run.finish(STEP_SERVING.name, "ok", f"production serves {uid}")
        return f"restored {', '.join(c.key for c in plan.changes)} from S-{plan.snapshot_id}; production serves {uid}"

    def _check_all(self, plan: EnvPlan, run: Run) -> list[EnvChange]:
        """The changes still to make. A key someone changed after the approval fails the rollback
        before anything is sent (an earlier executor's own write, read back, is not a change)."""
        now_vars = self._by_key(plan.project)
        todo = []
        for change in plan.changes:
            var = now_vars.get(change.key)
            fp = None if var is None else self._fp_of(plan.project, var)
            if fp == change.to_fp:
                run.audit(STEP_RESTORE.name, "skipped", key=change.key, why="already holds the snapshot's value")
                continue
            if fp != change.from_fp:
                now = "was removed" if fp is None else "was created" if change.from_fp is None else f"reads {fp} now"
                raise RollbackFailed(f"`{change.key}` {now} after {run.incident_ref} was approved (the approved plan "
                                     f"was {change.from_fp or 'absent'} → {change.to_fp}); nothing was changed. Request "
                                     "the rollback again.")
            todo.append(change)
        return todo

    def _restore(self, plan: EnvPlan, change: EnvChange, value: str, run: Run, attempts: int = 3) -> None:
        """Set one key. After an unknown outcome it is read back for the uncertain window and sent
        again only if it still holds the approved old value (a create: still absent)."""
        for attempt in range(1, attempts + 1):
            run.hold()
            run.audit(STEP_RESTORE.name, "attempt", key=change.key, to=change.to_fp, how=change.action)
            try:
                if change.action == "create":
                    self.provider.create_env(plan.project, change.key, value, change.type, change.target)
                else:
                    assert change.env_id is not None
                    self.provider.set_env_value(plan.project, change.env_id, value)
            except ProviderError as error:
                # A create that conflicts after an unanswered one: the first may have landed.
                unknown = error.uncertain or (attempt > 1 and change.action == "create" and error.status == 400)
                run.audit(STEP_RESTORE.name, "uncertain" if unknown else "refused", key=change.key,
                          error=error.message, status=error.status)
                if unknown:
                    seen = self._settle_key(plan, change, run)
                    if seen == change.to_fp:
                        run.audit(STEP_RESTORE.name, "ok", key=change.key, why=f"took effect despite: {error.message}")
                        return
                    if seen != change.from_fp:
                        raise ProviderError(f"after an unanswered write `{change.key}` reads {seen or 'absent'}, "
                                            "neither the approved value nor the snapshot's; it is not sent again.",
                                            uncertain=True) from None
                    run.audit(STEP_RESTORE.name, "not_taken", key=change.key,
                              why=f"still as approved after {self.uncertain_window:g}s")
                    if attempt < attempts:
                        continue
                elif error.refused_for_now and attempt < attempts:
                    self._sleep(min(error.retry_after or 1.0 * attempt, 10.0))
                    continue
                raise RollbackFailed(f"Vercel did not take `{change.key}` ({error.message}). Restored so far: "
                                     f"{', '.join(self._restored(plan)) or 'none'}; production was not redeployed. "
                                     f"The values before this rollback are in the snapshot `before "
                                     f"{run.incident_ref}`.") from None
            run.audit(STEP_RESTORE.name, "ok", key=change.key, to=change.to_fp)
            return

    def _settle_key(self, plan: EnvPlan, change: EnvChange, run: Run) -> str | None:
        """Read ``change.key`` until it shows the snapshot's value or the window ends; returns
        the last fingerprint read (None: absent). If no read succeeds, the outcome stays unknown
        and nothing is sent again."""
        seen, read = watch(lambda: self._read_fp(plan.project, change.key), lambda fp: fp == change.to_fp,
                           self.uncertain_window, run, self._sleep, self._monotonic)
        if not read:
            raise ProviderError(f"Vercel could not be read back after an unanswered write of `{change.key}`; it is "
                                "not sent again.", uncertain=True)
        return seen

    # -- read-back ---------------------------------------------------------------------------

    def _all_restored(self, plan: EnvPlan) -> bool:
        seen = self._changes_now(plan)
        return all(seen[c.key] == c.to_fp for c in plan.changes)

    def took_effect(self, plan: PlanBase) -> bool:
        assert isinstance(plan, EnvPlan)
        if not self._all_restored(plan):
            return False
        uid = self.provider.find_redeploy(plan.project, plan.tag)
        return bool(uid) and self.provider.production(plan.project).deployment == uid

    def verify(self, plan: PlanBase) -> Verification:
        assert isinstance(plan, EnvPlan)
        seen = self._changes_now(plan)
        wrong = [f"{c.key} reads {seen[c.key] or 'absent'}, not {c.to_fp}" for c in plan.changes
                 if seen[c.key] != c.to_fp]
        uid = self.provider.find_redeploy(plan.project, plan.tag)
        serving = self.provider.production(plan.project).deployment
        facts = {"fingerprints": seen, "production": serving, "rebuilt": uid}
        if wrong:
            return Verification(False, "; ".join(wrong), facts)
        if not uid or serving != uid:
            return Verification(False, f"production serves {serving}, not the rebuilt deployment {uid}", facts)
        keys = ", ".join(c.key for c in plan.changes)
        return Verification(True, f"{keys} read back as in S-{plan.snapshot_id}; production serves {uid}, rebuilt "
                                  "with them", facts)

    # -- the worker's part -------------------------------------------------------------------

    def maintain(self, env_name: str, env: Environment) -> str | None:
        """Take the scheduled snapshot of the environment's project when it is due."""
        if env.vercel_project is None or env.env_snapshot_every is None or self.snapshots.unavailable():
            return None
        now, project = self._now(), env.vercel_project
        every = env.env_snapshot_every.total_seconds()
        failed, retry_at = self._failures.get(project, (0, now))
        if now < retry_at or not snapshot_due(self.snapshots, project, every, now):
            return None
        try:
            info, new = take(self.provider, self.snapshots, project, now, "scheduled")
        except Exception:  # Vercel or the store failing: back off (30 s, 1 m, 2 m, … up to the period)
            self._failures[project] = (failed + 1, now + timedelta(seconds=min(30 * 2 ** failed, every)))
            raise
        self._failures.pop(project, None)
        return f"{info.ref} taken" if new else f"{info.ref} still current"

    # -- helpers -----------------------------------------------------------------------------

    def _by_key(self, project: str) -> dict[str, EnvVar]:
        found: dict[str, EnvVar] = {}
        for var in production_vars(self.provider, project):
            if var.key in found:
                raise Refused(f"`{escape(var.key)}` has more than one production entry in `{project}`; restore it "
                              "in Vercel by hand.")
            found[var.key] = var
        return found

    def _value(self, project: str, var: EnvVar) -> str | None:
        """The value now; None when it cannot be read (sensitive, or not decrypted)."""
        return None if var.type == SENSITIVE else self.provider.env_value(project, var.id)

    def _fp(self, project: str, key: str, value: str) -> str:
        return self.snapshots.fingerprint(f"{project}/{key}", value)

    def _fp_of(self, project: str, var: EnvVar) -> str:
        value = self._value(project, var)
        return UNREADABLE if value is None else self._fp(project, var.key, value)

    def _read_fp(self, project: str, key: str) -> str | None:
        """The fingerprint of ``key``'s value now; None when it does not exist, UNREADABLE when
        it cannot be read."""
        return self._read_fps(project, [key])[key]

    def _read_fps(self, project: str, keys: Sequence[str]) -> dict[str, str | None]:
        """Fingerprints of several keys now, from one listing (None: the key does not exist)."""
        listed = {v.key: v for v in production_vars(self.provider, project)}
        return {key: self._fp_of(project, listed[key]) if key in listed else None for key in keys}

    def _changes_now(self, plan: EnvPlan) -> dict[str, str | None]:
        return self._read_fps(plan.project, [c.key for c in plan.changes])

    def _restored(self, plan: EnvPlan) -> list[str]:
        try:
            seen = self._changes_now(plan)
        except ProviderError:
            return ["(Vercel could not be read to tell)"]
        return [c.key for c in plan.changes if seen[c.key] == c.to_fp]

    def _ago(self, at: datetime) -> str:
        return format_duration(self._now() - at)
