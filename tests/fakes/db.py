"""Fakes for the database kind: a target database, its migration folder and the backups.

The fake target cannot run SQL: a test says what reverting a version does to the schema
(``on_revert``), and ``script`` decides how each revert ends: "ok", "timeout" (lock_timeout,
nothing changed), "error" (nothing changed), "lost-committed" (the connection broke during a
commit that happened), "lost-rolled-back" (it broke, and nothing was committed).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from handlers.db_ports import AppliedMigration, Backup, DatabaseError, MigrationFile, Progress


def migration(version: str, name: str, *statements: str, applied_at: datetime | None = None) -> AppliedMigration:
    return AppliedMigration(version, name, tuple(statements), applied_at)


@dataclass
class FakeTarget:
    history_rows: list[AppliedMigration] = field(default_factory=lambda: [
        migration("20261101000000", "create_customers", "create table customers (id bigint primary key, name text)"),
        migration("20261127090000", "create_orders", "create type order_status as enum ('new', 'paid')",
                  "create table orders (id bigint primary key, customer_id bigint references customers (id), "
                  "status order_status)", "create index orders_customer on orders (customer_id)"),
        migration("20261128100000", "add_customer_tier", "alter table customers add column tier text"),
    ])
    objects: set[str] = field(default_factory=lambda: {"public.customers", "public.orders", "public.order_status",
                                                       "public.orders_customer"})
    columns: set[tuple[str, str]] = field(default_factory=lambda: {("public.customers", "tier"),
                                                                   ("public.customers", "name")})
    catalogue: dict[str, list[str]] = field(default_factory=dict)  # object -> what depends on it
    script: list[str] = field(default_factory=list)
    reverts: list[tuple[str, str, timedelta, timedelta]] = field(default_factory=list)
    on_revert: dict[str, Callable[[FakeTarget], None]] = field(default_factory=dict)
    missing: bool = False
    open_transaction: bool = False  # an earlier executor's revert is still open on the server
    keys: list[int] = field(default_factory=list)

    def unavailable(self, database: str) -> str | None:
        return f"{database} is not set" if self.missing else None

    def server_version(self, database: str) -> str:
        return "17.2"

    def history(self, database: str) -> list[AppliedMigration]:
        return sorted(self.history_rows, key=lambda m: m.version)

    def dependents(self, database: str, objects: Sequence[str]) -> list[str]:
        return [d for o in objects for d in self.catalogue.get(o, []) if o in self.objects]

    def exists(self, database: str, name: str) -> bool:
        return name in self.objects

    def has_column(self, database: str, table: str, column: str) -> bool:
        return (table, column) in self.columns

    def revert(self, database: str, version: str, sql: str, lock_timeout: timedelta,
               statement_timeout: timedelta, key: int) -> None:
        self.reverts.append((version, sql, lock_timeout, statement_timeout))
        self.keys.append(key)
        step = self.script.pop(0) if self.script else "ok"
        if step == "timeout":
            raise DatabaseError(f"lock_timeout ({lock_timeout.total_seconds():g}s) ran out waiting for a lock",
                                timed_out=True)
        if step == "error":
            raise DatabaseError('relation "orders" does not exist')
        if step == "lost-rolled-back":
            raise DatabaseError("the connection was lost during COMMIT", uncertain=True)
        self.history_rows = [m for m in self.history_rows if m.version != version]
        self.on_revert.get(version, lambda t: None)(self)
        if step == "lost-committed":
            raise DatabaseError("the connection was lost during COMMIT", uncertain=True)

    def settled(self, database: str, key: int, wait: timedelta) -> bool:
        return not self.open_transaction


@dataclass
class FakeSource:
    files: dict[str, MigrationFile] = field(default_factory=lambda: {
        "20261101000000": MigrationFile("20261101000000", "create_customers", None, None),
        "20261127090000": MigrationFile("20261127090000", "create_orders",
                                        "drop table orders;\ndrop type order_status;",
                                        "20261127090000_create_orders.down.sql"),
        "20261128100000": MigrationFile("20261128100000", "add_customer_tier",
                                        "alter table customers drop column tier;",
                                        "the -- rollback section of 20261128100000_add_customer_tier.sql"),
    })

    def migrations(self, directory: str) -> dict[str, MigrationFile]:
        return dict(self.files)


@dataclass
class FakeBackups:
    target: FakeTarget
    taken: list[Backup] = field(default_factory=list)
    script: list[str] = field(default_factory=list)  # "ok", "fail" (backup); "restore-fail"
    restored: list[int] = field(default_factory=list)
    pruned: list[int] = field(default_factory=list)
    problem: str | None = None
    chunks: int = 3
    clock: Callable[[], datetime] = lambda: datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def tools(self, database: str) -> str | None:
        return self.problem

    def backup(self, env: str, database: str, directory: str, reason: str, incident_id: int | None,
               versions: Sequence[str], progress: Progress, lock_wait: timedelta | None = None) -> Backup:
        if self.script and self.script.pop(0) == "fail":
            raise DatabaseError("pg_dump: error: connection to server failed")
        for n in range(1, self.chunks + 1):
            progress(n * 1024 * 1024)
        backup = Backup(next(self._ids), env, database, f"{directory}/{env}-{len(self.taken)}.dump", 3 * 1024 * 1024,
                        "ab" * 32, self.clock(), timedelta(seconds=4), "17.2", "17.2", reason, incident_id,
                        tuple(versions))
        self.taken.append(backup)
        return backup

    def restore_tools(self, database: str, backup: Backup) -> str | None:
        return self.problem

    def restore(self, database: str, backup: Backup, progress: Progress, lock_wait: timedelta | None = None) -> None:
        step = self.script.pop(0) if self.script else "ok"
        if step == "restore-fail":
            raise DatabaseError("pg_restore: error: could not execute query")
        if step == "restore-lost":
            raise DatabaseError("pg_restore was killed", uncertain=True)
        progress(backup.size)
        self.restored.append(backup.id)
        keep = set(backup.versions)
        known = {m.version: m for m in self.target.history_rows}
        self.target.history_rows = [known.get(v) or AppliedMigration(v, "restored", (), None) for v in sorted(keep)]

    def get(self, backup_id: int) -> Backup | None:
        return next((b for b in self.taken if b.id == backup_id and b.id not in self.pruned), None)

    def recent(self, env: str, limit: int) -> list[Backup]:
        return sorted((b for b in self.taken if b.env == env and b.id not in self.pruned), key=lambda b: -b.id)[:limit]

    def prune(self, env: str, older_than: datetime, keep: Callable[[Backup], bool]) -> list[Backup]:
        gone = [b for b in self.recent(env, 1000) if b.taken_at < older_than and not keep(b)]
        self.pruned += [b.id for b in gone]
        return gone
