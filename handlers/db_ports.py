"""What the database kind needs from outside: the target database (the team's application
database, never the bot's), its migration files, and backups (``pg_dump`` / ``pg_restore``
with a catalogue in the bot's own Postgres).

A target is named by ``database_url_env``, the environment variable that holds its URL: the core
never sees the URL (it carries a password), only that name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True)
class AppliedMigration:
    """A row of ``supabase_migrations.schema_migrations``."""

    version: str
    name: str
    statements: tuple[str, ...]
    applied_at: datetime | None  # when its row was committed, if the server keeps commit timestamps


@dataclass(frozen=True)
class MigrationFile:
    """A migration in ``migrations_dir``: ``<version>_<name>.sql``, and its reverse SQL from
    ``<version>_<name>.down.sql`` beside it or from a ``-- rollback`` section of its own."""

    version: str
    name: str
    reverse_sql: str | None
    reverse_source: str | None  # "<file>.down.sql" or "the -- rollback section of <file>.sql"
    problem: str | None = None  # why the reverse SQL cannot be used as it is


class DatabaseError(Exception):
    """The target refused or failed; ``message`` is safe to show (no URL, no password).
    ``uncertain``: the connection broke while a change was being committed."""

    def __init__(self, message: str, *, uncertain: bool = False, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.uncertain = uncertain
        self.timed_out = timed_out  # a lock_timeout or statement_timeout ended it


class TargetDatabase(Protocol):
    def unavailable(self, database: str) -> str | None:
        """Why the target named by ``database`` (an env var name) cannot be used, or None."""

    def server_version(self, database: str) -> str:
        """``server_version`` as the server reports it ("17.2 (Debian …)")."""

    def history(self, database: str) -> list[AppliedMigration]:
        """Every applied migration, oldest first. Raises DatabaseError."""

    def dependents(self, database: str, objects: Sequence[str], columns: Sequence[tuple[str, str]] = ()) -> list[str]:
        """What the catalogue (``pg_depend``) says depends on any of ``objects`` (``schema.name``;
        a name without a dot is a schema) or on any of ``columns`` ((table, column)) and is not
        part of them: views, foreign keys, column defaults, check constraints, indexes, policies,
        triggers, columns of other tables typed with them, objects in the schema. Described for
        people ("view public.order_totals", "default of public.invoices.status")."""

    def exists(self, database: str, name: str) -> bool:
        """Is there a relation, type, function or schema of that ``schema.name``?"""

    def has_column(self, database: str, table: str, column: str) -> bool: ...

    def revert(self, database: str, version: str, sql: str, lock_timeout: timedelta,
               statement_timeout: timedelta, key: int) -> None:
        """Run ``sql`` and delete the history row of ``version`` in ONE transaction, with those
        timeouts, holding the transaction-level advisory lock ``key`` (the incident) and an
        ``idle_in_transaction_session_timeout`` shorter than the execution lease (so a frozen
        executor's transaction cannot outlive its lease for long). Raises DatabaseError
        (``timed_out`` for a timeout; ``uncertain`` when the connection broke during the commit);
        otherwise it committed."""

    def settled(self, database: str, key: int, wait: timedelta) -> bool:
        """Wait up to ``wait`` until no transaction holds the advisory lock ``key`` (an earlier
        executor's revert has committed or rolled back); False when one still does."""


class MigrationSource(Protocol):
    def migrations(self, directory: str) -> dict[str, MigrationFile]:
        """The migrations of the folder, by version. Raises DatabaseError when it cannot be read."""


@dataclass(frozen=True)
class Backup:
    """A backup the bot took, as its catalogue keeps it."""

    id: int
    env: str
    database: str  # the env var naming the target
    path: str
    size: int
    sha256: str
    taken_at: datetime
    duration: timedelta
    server_version: str
    tool_version: str  # pg_dump's
    reason: str  # "before RB-12", "restore of B-3 (RB-14)"
    incident_id: int | None
    versions: tuple[str, ...]  # the migration history at that moment

    @property
    def ref(self) -> str:
        return f"B-{self.id}"


Progress = Callable[[int], None]  # bytes written so far


class Backups(Protocol):
    def tools(self, database: str) -> str | None:
        """Why no ``pg_dump``/``pg_restore`` here can handle the target's server (with what was
        found), or None."""

    def backup(self, env: str, database: str, directory: str, reason: str, incident_id: int | None,
               versions: Sequence[str], progress: Progress, lock_wait: timedelta | None = None) -> Backup:
        """``pg_dump -Fc`` into a new file of ``directory`` (mode 0600), catalogued with size,
        sha256, duration and versions; ``lock_wait``: how long pg_dump may wait for its shared
        table locks before it fails (never forever). Raises DatabaseError; a failed dump leaves
        no file and no catalogue row."""

    def restore(self, database: str, backup: Backup, progress: Progress, lock_wait: timedelta | None = None) -> None:
        """``pg_restore --clean --if-exists --single-transaction`` of ``backup`` into the target,
        after checking the file's sha256; ``lock_wait`` becomes its ``lock_timeout`` (it never
        queues for the application's locks forever). Raises DatabaseError (nothing changed: one
        transaction)."""

    def restore_tools(self, database: str, backup: Backup) -> str | None:
        """Why no ``pg_restore`` here can restore ``backup`` (made by its ``tool_version``) into
        the target's server, or None."""

    def get(self, backup_id: int) -> Backup | None: ...

    def recent(self, env: str, limit: int) -> list[Backup]:
        """Newest first, pruned ones left out."""

    def prune(self, env: str, older_than: datetime, keep: Callable[[Backup], bool]) -> list[Backup]:
        """Delete the files and mark pruned every backup of ``env`` taken before ``older_than``,
        except those ``keep`` says to keep; returns what was pruned."""
