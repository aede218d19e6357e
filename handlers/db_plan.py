"""The database kind's plans and the checks that refuse one: revert one migration with its
reverse SQL, or restore a backup the bot took.

A revert is refused, naming what stands in the way, when the version is unknown or not applied,
when it has no usable reverse SQL, when a later applied migration touches an object it created or
altered (read from the applied statements with PostgreSQL's parser; text the parser cannot follow
counts as touching), when the catalogue shows other objects depending on what it created, or when
no ``pg_dump`` here can back the server up. Approvals are bound to the exact reverse SQL (its
sha256) and to the history's newest version, so a change to either voids them.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from handlers.db_effects import Effects, Expectation
from handlers.db_ports import AppliedMigration, Backup, MigrationFile
from handlers.plans import PlanBase
from handlers.services import Refused
from handlers.text import escape


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MigrationRef(_Frozen):
    version: str
    name: str
    applied_at: datetime | None = None
    reverse_source: str
    reverse_sha256: str


class BackupRef(_Frozen):
    id: int
    taken_at: datetime
    size: int
    sha256: str
    reason: str
    versions: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"B-{self.id}"


class Fact(_Frozen):
    check: str
    target: str
    column: str | None = None

    def expectation(self) -> Expectation:
        return Expectation(self.check, self.target, self.column)


class DatabasePlan(PlanBase):
    kind: Literal["database"] = "database"
    action: Literal["revert", "restore"]
    database: str  # the environment variable naming the target (never its URL)
    server_version: str
    head: str | None  # the newest applied version when planned
    migration: MigrationRef | None = None
    facts: tuple[Fact, ...] = ()  # the schema once reverted
    backup: BackupRef | None = None
    removed: tuple[str, ...] = ()  # restore: versions applied now that the backup does not have
    added: tuple[str, ...] = ()  # restore: versions the backup has that are not applied now
    estimate_seconds: float | None = None  # a backup's likely duration, from earlier ones (display only)
    # The environment's settings when planned, for the executor (not part of what is approved):
    migrations_dir: str = ""
    backup_dir: str = ""
    lock_timeout_ms: int = 5000
    statement_timeout_ms: int = 300_000

    def binding(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"server_version", "estimate_seconds", "revision", "migrations_dir",
                                                     "backup_dir", "lock_timeout_ms", "statement_timeout_ms"})

    @property
    def target(self) -> str:
        return self.database

    @property
    def change(self) -> tuple[str, str]:
        if self.action == "revert" and self.migration:
            return f"{self.migration.version} applied", f"{self.migration.version} reverted"
        assert self.backup is not None
        return f"history at {self.head or 'empty'}", f"backup {self.backup.ref}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def applied_effects(migration: AppliedMigration) -> Effects:
    from handlers.db_sql import effects  # the parser loads where plans are made (the worker), not where drawn

    if not any(s.strip() for s in migration.statements):
        return Effects(doubts=["its history row records no statements (written by `migration repair`?)"])
    return effects(";\n".join(migration.statements))


def applied_after(target: AppliedMigration, history: Sequence[AppliedMigration]) -> list[AppliedMigration]:
    """The migrations applied after ``target``: by commit time when the server keeps it (a
    migration with an older version can be applied later), else by version."""
    if target.applied_at is not None and all(m.applied_at is not None for m in history):
        return [m for m in history if m.version != target.version and m.applied_at >= target.applied_at]  # type: ignore[operator]
    return [m for m in history if m.version > target.version]


def check_revert(version: str, history: Sequence[AppliedMigration], files: dict[str, MigrationFile],
                 directory: str) -> tuple[AppliedMigration, MigrationFile, Effects]:
    """The migration to revert, its file and what it did; Refused with the reason otherwise."""
    applied = {m.version: m for m in history}
    target = applied.get(version)
    if target is None:
        if version in files:
            raise Refused(f"`{escape(version)}` ({escape(files[version].name)}) is in `{escape(directory)}` but is not "
                          "applied to the database; there is nothing to revert.")
        names = [f"{m.version}_{m.name}" for m in history]
        close = difflib.get_close_matches(version, [m.version for m in history] + names, n=3, cutoff=0.6)
        hint = (" Did you mean " + ", ".join(f"`{escape(c)}`" for c in close) + "?") if close else ""
        raise Refused(f"`{escape(version)}` is not a migration applied to the database.{hint} "
                      "`/rollback db <env> list` shows the recent ones.")
    file = files.get(version)
    if file is None:
        raise Refused(f"`{escape(version)}` has no migration file in `{escape(directory)}`, so Rollbot has no reverse "
                      "SQL for it.")
    if file.problem:
        raise Refused(f"the reverse SQL of `{escape(version)}` cannot be used: {escape(file.problem)}")
    if not file.reverse_sql:
        raise Refused(f"`{escape(version)}_{escape(file.name)}` has no reverse SQL: add "
                      f"`{escape(version)}_{escape(file.name)}.down.sql` beside it, or a `-- rollback` section at its "
                      "end (each line commented out).")
    from handlers.db_sql import parses
    from handlers.db_txn import transaction_problem

    unreadable = parses(file.reverse_sql) or transaction_problem(file.reverse_sql)
    if unreadable:
        raise Refused(f"the reverse SQL of `{escape(version)}` ({escape(file.reverse_source or '')}) does not parse: "
                      f"{escape(unreadable)}")
    return target, file, applied_effects(target)


def later_dependents(target: AppliedMigration, forward: Effects, history: Sequence[AppliedMigration]) -> list[str]:
    """Later applied migrations that touch what ``target`` created or altered, each with why;
    when in doubt (SQL that cannot be followed), the migration counts."""
    later = applied_after(target, history)
    if not later:
        return []
    if forward.doubts:
        return [f"`{escape(m.version)}_{escape(m.name)}` (what `{escape(target.version)}` changed cannot be read for "
                f"sure: {escape(forward.doubts[0])})" for m in later]
    found = []
    for m in later:
        theirs = applied_effects(m)
        hits = theirs.touches(forward.owned)
        if hits:
            found.append(f"`{escape(m.version)}_{escape(m.name)}` (touches {', '.join(sorted(hits))})")
        elif theirs.doubts:
            found.append(f"`{escape(m.version)}_{escape(m.name)}` (cannot be read for sure: {escape(theirs.doubts[0])})")
    return found


def facts_after(forward: Effects) -> tuple[Fact, ...]:
    from handlers.db_sql import reverted

    return tuple(Fact(check=e.check, target=e.target, column=e.column) for e in reverted(forward))


def backup_ref(backup: Backup) -> BackupRef:
    return BackupRef(id=backup.id, taken_at=backup.taken_at, size=backup.size, sha256=backup.sha256,
                     reason=backup.reason, versions=backup.versions)


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
