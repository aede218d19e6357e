"""The database rollback kind: revert one migration (reverse SQL, backup first) or restore a
backup the bot took, on the team's own application database (never the bot's).

Execute: first a ``pg_dump -Fc`` backup (progress in the thread: bytes, elapsed, an estimate from
earlier backups; ticks "Backup current state"); then either the reverse SQL and the removal of the
history row in ONE transaction with ``lock_timeout`` and ``statement_timeout``, or
``pg_restore --clean --if-exists --single-transaction``. A timeout or an error inside the
transaction changes nothing, and the thread says so with the runbook's manual steps. Verify: the
history row is gone and the migration's objects are back as before it (or the history equals the
backup's), then the health checks. Nothing here ever runs ``supabase migration down`` or a reset.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from handlers.commands import CommandError
from handlers.config import Environment
from handlers.db_plan import (
    DatabasePlan,
    MigrationRef,
    backup_ref,
    check_revert,
    facts_after,
    later_dependents,
    sha256,
    size,
)
from handlers.db_ports import Backup, Backups, DatabaseError, MigrationSource, TargetDatabase
from handlers.db_upkeep import listing, newest_revertible, prune
from handlers.durations import format_duration
from handlers.kind import RollbackFailed, Run, Step, Verification
from handlers.plans import PlanBase
from handlers.ports import ProviderError
from handlers.services import Refused
from handlers.text import escape

STEP_BACKUP = Step("db.backup", "Back up the database (pg_dump)")
STEP_REVERT = Step("db.revert", "Reverse SQL and history row, in one transaction")
STEP_RESTORE = Step("db.restore", "Restore the backup (pg_restore, one transaction)")
NOTE_EVERY = 5.0  # seconds between progress notes of a long step


class DatabaseKind:
    name: str = "database"
    words: tuple[str, ...] = ("db", "database")
    title: str = "Database rollback"
    usage: str = ("/rollback db    <env> <migration>        [reason]   revert one migration (reverse SQL), backup first\n"
                  "/rollback db    <env> restore <backup>   [reason]   restore a backup taken by the bot\n"
                  "/rollback db    <env> list                          migrations of the last 24 h and recent backups")
    plan_model: type[PlanBase] = DatabasePlan
    target: timedelta = timedelta(minutes=30)
    risk: str = "Medium"
    lease: timedelta = timedelta(minutes=2)  # the heartbeat renews it through a long backup
    steps: tuple[Step, ...] = (STEP_BACKUP, STEP_REVERT, STEP_RESTORE)
    ticks: tuple[str, ...] = ()
    checklist: tuple[str, ...] = ("backup",)
    queries: tuple[str, ...] = ("list",)
    next_step: str = ("Runbook, database: the backup taken first is in `backup_dir` (`/rollback db <env> list`). "
                      "Connect to the database, run the migration's reverse SQL and delete its row from "
                      "`supabase_migrations.schema_migrations` in one transaction, or restore the backup with "
                      "`pg_restore --clean --if-exists --single-transaction`; never `supabase migration down` or a "
                      "reset against production. Verify the data, then monitor for 15 minutes.")

    def __init__(self, target_db: TargetDatabase, source: MigrationSource, backups: Backups,
                 now: Callable[[], datetime], open_incidents: Callable[[], Sequence[tuple[int, PlanBase]]], *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = target_db
        self.source = source
        self.backups = backups
        self._now = now
        self._open = open_incidents  # (id, plan) of every incident still open
        self._monotonic = monotonic

    # -- request -----------------------------------------------------------------------------

    def parse(self, env: str, words: Sequence[str]) -> tuple[dict[str, Any], str]:
        if not words:
            raise CommandError(f"`db {escape(env)}` needs a migration, `restore B-<id>` or `list`: "
                               f"`/rollback db {escape(env)} 20250130120000 reason…`.")
        if words[0].lower() == "restore":
            ref = words[1] if len(words) > 1 else ""
            number = ref.upper().removeprefix("B-")
            if not (number.isascii() and number.isdigit()):
                raise CommandError(f"`restore` needs a backup like `B-12` (`/rollback db {escape(env)} list` shows them), "
                                   f"not `{escape(ref) or 'nothing'}`.")
            return {"backup": int(number)}, " ".join(words[2:])
        version = words[0].split("_", 1)[0]
        if not (version.isascii() and version.isdigit()):
            raise CommandError(f"`{escape(words[0])}` is not a migration version (the digits its file name starts "
                               "with, like `20250130120000`).")
        return {"version": version}, " ".join(words[1:])

    def configured(self, env: Environment) -> str | None:
        missing = [k for k in ("database_url_env", "migrations_dir", "backup_dir") if not getattr(env, k)]
        if missing:
            return f"has no {', '.join(f'`{k}`' for k in missing)} configured, so database rollbacks are off"
        assert env.database_url_env is not None
        return self.db.unavailable(env.database_url_env)

    def plan(self, env_name: str, env: Environment, args: Mapping[str, Any]) -> DatabasePlan:
        assert env.database_url_env and env.migrations_dir
        try:
            if "backup" in args:
                return self._restore_plan(env_name, env, int(args["backup"]))
            return self._revert_plan(env_name, env, str(args["version"]))
        except DatabaseError as error:
            raise ProviderError(error.message) from None

    def replan(self, plan: PlanBase, env: Environment) -> DatabasePlan:
        assert isinstance(plan, DatabasePlan)
        if self.took_effect(plan):
            return plan  # done already (by an earlier executor, or by hand): execute verifies
        args = {"backup": plan.backup.id} if plan.backup else {"version": plan.migration.version if plan.migration else ""}
        return self.plan(plan.env, env, args)

    def _tools(self, database: str) -> None:
        problem = self.backups.tools(database)
        if problem:
            raise Refused(f"no backup can be taken first: {escape(problem)}")

    def _revert_plan(self, env_name: str, env: Environment, version: str) -> DatabasePlan:
        assert env.database_url_env and env.migrations_dir
        database = env.database_url_env
        history = self.db.history(database)
        files = self.source.migrations(env.migrations_dir)
        target, file, forward = check_revert(version, history, files, env.migrations_dir)
        blocking = later_dependents(target, forward, history)
        if blocking:
            raise Refused(f"later migrations depend on `{escape(version)}_{escape(target.name)}`: "
                          f"{'; '.join(blocking)}. Revert those first (newest first), or restore a backup.")
        dependents = self.db.dependents(database, sorted(forward.created))
        if dependents:
            raise Refused(f"the database has objects that depend on what `{escape(version)}` created: "
                          f"{escape(', '.join(dependents))}. Remove them first, or restore a backup.")
        self._tools(database)
        assert file.reverse_sql is not None
        return DatabasePlan(
            env=env_name, action="revert", database=database, server_version=self.db.server_version(database),
            head=history[-1].version if history else None,
            migration=MigrationRef(version=version, name=target.name, applied_at=target.applied_at,
                                   reverse_source=file.reverse_source or "", reverse_sha256=sha256(file.reverse_sql)),
            facts=facts_after(forward), estimate_seconds=self._estimate(env_name), **_settings(env))

    def _restore_plan(self, env_name: str, env: Environment, backup_id: int) -> DatabasePlan:
        assert env.database_url_env
        backup = self.backups.get(backup_id)
        if backup is None or backup.env != env_name:
            raise Refused(f"there is no backup `B-{backup_id}` of *{escape(env_name)}*; `/rollback db {escape(env_name)} "
                          "list` shows them.")
        if backup.database != env.database_url_env:
            raise Refused(f"`B-{backup_id}` was taken of `{escape(backup.database)}`, not of this environment's "
                          f"`{escape(env.database_url_env)}`.")
        self._tools(env.database_url_env)
        unrestorable = self.backups.restore_tools(env.database_url_env, backup)
        if unrestorable:
            raise Refused(f"`B-{backup_id}` cannot be restored here: {escape(unrestorable)}")
        now = [m.version for m in self.db.history(env.database_url_env)]
        return DatabasePlan(
            env=env_name, action="restore", database=env.database_url_env,
            server_version=self.db.server_version(env.database_url_env), head=now[-1] if now else None,
            backup=backup_ref(backup), removed=tuple(v for v in now if v not in backup.versions),
            added=tuple(v for v in backup.versions if v not in now), estimate_seconds=self._estimate(env_name),
            **_settings(env))

    def _estimate(self, env_name: str) -> float | None:
        earlier = [b.duration.total_seconds() for b in self.backups.recent(env_name, 5)]
        return sum(earlier) / len(earlier) if earlier else None

    # -- execution ---------------------------------------------------------------------------

    def execute(self, plan: PlanBase, run: Run) -> str:
        assert isinstance(plan, DatabasePlan)
        try:
            backup = self._backup(plan, run)
            if plan.action == "restore":
                return self._restore(plan, run, backup)
            return self._revert(plan, run, backup)
        except DatabaseError as error:  # the target could not be read: the driver reads back before it says anything
            raise ProviderError(error.message, uncertain=error.uncertain) from None

    def _backup(self, plan: DatabasePlan, run: Run) -> Backup:
        """The backup before the change: taken once per incident (a resumed execution keeps it)."""
        run.step(STEP_BACKUP.name)
        reason = f"before {run.incident_ref}"
        taken = next((b for b in self.backups.recent(plan.env, 20) if b.reason == reason), None)
        if taken is None:
            try:
                versions = [m.version for m in self.db.history(plan.database)]
                guess = (f" of about {format_duration(timedelta(seconds=plan.estimate_seconds))}"
                         if plan.estimate_seconds else "")
                progress = _Progress(run, STEP_BACKUP.name, self._monotonic,
                                     lambda done, elapsed: f"{size(done)} written, {elapsed}{guess}")

                run.hold()
                run.audit(STEP_BACKUP.name, "attempt", database=plan.database)
                taken = self.backups.backup(plan.env, plan.database, plan.backup_dir, reason, run.incident_id,
                                            versions, progress, timedelta(milliseconds=plan.statement_timeout_ms))
            except DatabaseError as error:
                run.audit(STEP_BACKUP.name, "failed", error=error.message)
                raise RollbackFailed(f"the backup failed ({error.message}); nothing was changed.") from None
        run.audit(STEP_BACKUP.name, "ok", backup=taken.ref, size=taken.size, sha256=taken.sha256,
                  seconds=round(taken.duration.total_seconds(), 2), server=taken.server_version, path=taken.path)
        run.finish(STEP_BACKUP.name, "ok", f"{taken.ref}: {size(taken.size)} in "
                                           f"{format_duration(taken.duration)} (sha256 {taken.sha256[:12]}…)")
        run.tick("backup")
        return taken

    def _revert(self, plan: DatabasePlan, run: Run, backup: Backup) -> str:
        assert plan.migration is not None
        migration = plan.migration
        run.step(STEP_REVERT.name)
        if run.unresolved_attempt and not self.db.settled(plan.database, run.incident_id, self._settle_wait(plan)):
            raise ProviderError("an earlier executor's transaction on the database is still open; whether it will "
                                "commit cannot be told yet, so nothing is sent again. Check the migration history "
                                "by hand.", uncertain=True)
        versions = [m.version for m in self.db.history(plan.database)]
        if migration.version not in versions:
            run.audit(STEP_REVERT.name, "skipped", why="the history row is already gone")
            run.finish(STEP_REVERT.name, "ok", "already reverted")
            return f"{migration.version} was already reverted"
        file = self.source.migrations(plan.migrations_dir).get(migration.version)
        if file is None or file.reverse_sql is None or sha256(file.reverse_sql) != migration.reverse_sha256:
            raise RollbackFailed(f"the reverse SQL of `{migration.version}` changed after {run.incident_ref} was "
                                 f"approved; nothing was changed. Request the rollback again. Backup {backup.ref} "
                                 "was kept.")
        run.hold()
        run.audit(STEP_REVERT.name, "attempt", version=migration.version, reverse_sha256=migration.reverse_sha256)
        try:
            self.db.revert(plan.database, migration.version, file.reverse_sql,
                           timedelta(milliseconds=plan.lock_timeout_ms), timedelta(milliseconds=plan.statement_timeout_ms),
                           run.incident_id)
        except DatabaseError as error:
            run.audit(STEP_REVERT.name, "uncertain" if error.uncertain else "failed", error=error.message,
                      timed_out=error.timed_out)
            if error.uncertain:
                try:
                    settled = self.db.settled(plan.database, run.incident_id, self._settle_wait(plan))
                    still = migration.version in [m.version for m in self.db.history(plan.database)]
                except DatabaseError as unreadable:
                    raise ProviderError(f"{error.message}, and the database cannot be read back ({unreadable.message}): "
                                        "the revert may or may not have committed. Check the migration history by "
                                        "hand.", uncertain=True) from None
                if not still:
                    run.audit(STEP_REVERT.name, "ok", why=f"committed despite: {error.message}")
                    run.finish(STEP_REVERT.name, "ok", "committed (read back after a lost connection)")
                    return f"reverted {migration.version} (confirmed by reading the history back)"
                if not settled:
                    raise ProviderError(f"{error.message}; its transaction is still open on the server, so whether it "
                                        "commits cannot be told yet. Check the migration history by hand.",
                                        uncertain=True) from None
            said = error.message.rstrip(". ")
            also = "" if "nothing was changed" in said else " The transaction rolled back: nothing was changed."
            raise RollbackFailed(f"{said}.{also} Backup {backup.ref} was kept.") from None
        run.audit(STEP_REVERT.name, "ok", version=migration.version)
        run.finish(STEP_REVERT.name, "ok", f"{migration.version}_{migration.name} reverted; its history row removed")
        return f"reverted {migration.version}_{migration.name} (backup {backup.ref} first)"

    def _restore(self, plan: DatabasePlan, run: Run, fresh: Backup) -> str:
        assert plan.backup is not None
        run.step(STEP_RESTORE.name)
        backup = self.backups.get(plan.backup.id)
        if backup is None or backup.sha256 != plan.backup.sha256:
            raise RollbackFailed(f"backup {plan.backup.ref} is gone or changed since {run.incident_ref} was approved; "
                                 f"nothing was changed. Backup {fresh.ref} was kept.")
        progress = _Progress(run, STEP_RESTORE.name, self._monotonic,
                             lambda done, elapsed: f"{size(done)} of {size(backup.size)} read, {elapsed}")

        if run.unresolved_attempt:  # an earlier executor started pg_restore and never said how it ended
            now = tuple(m.version for m in self.db.history(plan.database))
            if now == backup.versions and self._distinguishable(plan):
                run.audit(STEP_RESTORE.name, "ok", why="an earlier executor's restore took effect (history read back)")
                run.finish(STEP_RESTORE.name, "ok", f"{backup.ref} restored by an earlier executor")
                return f"restored {backup.ref} (by an earlier executor; confirmed by reading the history back)"
            # Its pg_restore may still be running (or committing): never a second one alongside it.
            raise ProviderError(f"an earlier executor started restoring {backup.ref} and stopped before it said how "
                                "it ended; it is not restored again. Check the data and the migration history by "
                                "hand.", uncertain=True)
        run.hold()
        run.audit(STEP_RESTORE.name, "attempt", backup=backup.ref, sha256=backup.sha256)
        try:
            self.backups.restore(plan.database, backup, progress, timedelta(milliseconds=plan.lock_timeout_ms))
        except DatabaseError as error:
            run.audit(STEP_RESTORE.name, "uncertain" if error.uncertain else "failed", error=error.message)
            if error.uncertain and self._distinguishable(plan) and self.took_effect(plan):
                return f"restored {backup.ref} (confirmed by reading the history back)"
            if error.uncertain:
                raise ProviderError(f"the restore of {backup.ref} ended without an answer ({error.message}); whether "
                                    "it committed cannot be told, so it is not run again. Check the data by hand.",
                                    uncertain=True) from None
            raise RollbackFailed(f"the restore failed ({error.message}); it ran as one transaction, so nothing was "
                                 f"changed. Backup {fresh.ref} of the state before was kept.") from None
        run.audit(STEP_RESTORE.name, "ok", backup=backup.ref)
        run.finish(STEP_RESTORE.name, "ok", f"{backup.ref} restored ({size(backup.size)})")
        return f"restored {backup.ref} (backup {fresh.ref} of the state before first)"

    @staticmethod
    def _distinguishable(plan: DatabasePlan) -> bool:
        """Can the migration history tell a restored database from one not restored?"""
        return bool(plan.removed or plan.added)

    @staticmethod
    def _settle_wait(plan: DatabasePlan) -> timedelta:
        """Long enough for an earlier executor's open revert to end: its statement, then the
        server's idle-in-transaction limit."""
        return timedelta(milliseconds=plan.statement_timeout_ms) + timedelta(seconds=45)

    # -- what people ask, and the worker's upkeep -----------------------------------------------

    def query(self, env_name: str, env: Environment, words: Sequence[str]) -> str:
        """`/rollback db <env> list`: recent migrations and recent backups."""
        return listing(self.db, self.source, self.backups, env_name, env, self._now())

    def suggest(self, env_name: str, env: Environment) -> str | None:
        return newest_revertible(self.db, self.source, env, self._now())

    def maintain(self, env_name: str, env: Environment) -> str | None:
        """Prune backups older than ``backup_retention``, but never the newest backup taken
        before a still-open incident, nor one a still-open restore names. An environment
        without database rollbacks costs nothing: the open incidents are read only for one with."""
        if not env.database_url_env or not env.backup_dir:
            return None
        return prune(self.backups, self._open(), env_name, env, self._now())

    # -- read-back ---------------------------------------------------------------------------

    def took_effect(self, plan: PlanBase) -> bool:
        """After an error: is the change in place? A restore the history cannot tell apart (the
        backup has the same migrations as before) never counts as done by reading back."""
        assert isinstance(plan, DatabasePlan)
        if plan.action == "restore" and not self._distinguishable(plan):
            return False
        try:
            return self.verify(plan).ok
        except ProviderError:
            return False

    def verify(self, plan: PlanBase) -> Verification:
        assert isinstance(plan, DatabasePlan)
        try:
            versions = [m.version for m in self.db.history(plan.database)]
            if plan.action == "restore":
                assert plan.backup is not None
                ok = tuple(versions) == plan.backup.versions
                detail = (f"the migration history matches backup {plan.backup.ref} ({len(versions)} migrations)" if ok
                          else f"the history has {len(versions)} migrations, not the {len(plan.backup.versions)} of "
                               f"backup {plan.backup.ref}")
                return Verification(ok, detail, {"versions": versions[-5:]})
            assert plan.migration is not None
            if plan.migration.version in versions:
                return Verification(False, f"the history row of {plan.migration.version} is still there",
                                    {"head": versions[-1] if versions else None})
            wrong = [f.expectation().describe() for f in plan.facts if not self._holds(plan.database, f.check,
                                                                                        f.target, f.column)]
            if wrong:
                return Verification(False, "not as before the migration: " + "; ".join(f"not true that {w}"
                                                                                       for w in wrong), {})
            shown = "; ".join(f.expectation().describe() for f in plan.facts[:6])
            more = f" and {len(plan.facts) - 6} more" if len(plan.facts) > 6 else ""
            return Verification(True, f"the history row of {plan.migration.version} is gone"
                                      + (f"; {shown}{more}" if shown else ""), {"facts": len(plan.facts)})
        except DatabaseError as error:
            raise ProviderError(error.message) from None

    def _holds(self, database: str, check: str, target: str, column: str | None) -> bool:
        if check == "absent":
            return not self.db.exists(database, target)
        assert column is not None
        return self.db.has_column(database, target, column) == (check == "column")


def _settings(env: Environment) -> dict[str, Any]:
    return {"migrations_dir": env.migrations_dir or "", "backup_dir": env.backup_dir or "",
            "lock_timeout_ms": int(env.lock_timeout.total_seconds() * 1000),
            "statement_timeout_ms": int(env.statement_timeout.total_seconds() * 1000)}


class _Progress:
    """A long step's progress for the thread: at most one note every NOTE_EVERY seconds (each is a
    ``chat.update``, which Slack allows about once a second)."""

    def __init__(self, run: Run, step: str, monotonic: Callable[[], float],
                 say: Callable[[int, str], str]) -> None:
        self._run, self._step, self._monotonic, self._say = run, step, monotonic, say
        self._started = monotonic()
        self._last = float("-inf")

    def __call__(self, done: int) -> None:
        now = self._monotonic()
        if now - self._last >= NOTE_EVERY:
            self._last = now
            self._run.note(self._step, self._say(done, format_duration(timedelta(seconds=now - self._started))))
