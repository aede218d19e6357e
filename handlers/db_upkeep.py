"""What the database kind answers and keeps up besides rollbacks: `/rollback db <env> list`
(recent migrations with their reverse SQL, recent backups) and the pruning of old backups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from handlers.config import Environment
from handlers.db_plan import DatabasePlan, size
from handlers.db_ports import AppliedMigration, Backup, Backups, DatabaseError, MigrationSource, TargetDatabase
from handlers.durations import format_duration
from handlers.plans import PlanBase
from handlers.services import Refused
from handlers.text import escape

RECENT = timedelta(hours=24)


def listing(db: TargetDatabase, source: MigrationSource, backups: Backups, env_name: str, env: Environment,
            now: datetime) -> str:
    """`/rollback db <env> list`: recent migrations and recent backups."""
    assert env.database_url_env and env.migrations_dir
    try:
        history = db.history(env.database_url_env)
        files = source.migrations(env.migrations_dir)
    except DatabaseError as error:
        raise Refused(escape(error.message)) from None

    def when(m: AppliedMigration) -> datetime | None:
        return _applied_or_version_time(m.applied_at, m.version)

    recent = [m for m in history if (at := when(m)) is not None and at >= now - RECENT]
    by = "" if any(m.applied_at for m in history) else " (by version date: the server keeps no commit times)"
    lines = [f"*Migrations of {escape(env_name)} applied in the last 24 hours*{by}:"]
    if not recent:
        lines.append("_none in the last 24 hours; the newest five:_" if history else "_no migrations applied_")
    for m in reversed(recent or history[-5:]):
        at, file = when(m), files.get(m.version)
        if file is None:
            reverse = "no migration file"
        elif file.problem:
            reverse = "reverse SQL unusable"
        elif file.reverse_sql:
            reverse = f"reverse SQL: {escape(file.reverse_source or 'yes')}"
        else:
            reverse = "no reverse SQL"
        age = f"{format_duration(now - at)} ago" if at else "age unknown"
        lines.append(f"• `{escape(m.version)}` {escape(m.name)} · {age} · {reverse}")
    recent_backups = backups.recent(env_name, 10)
    lines.append(f"*Recent backups of {escape(env_name)}:*" if recent_backups else "_No backups taken yet._")
    for b in recent_backups:
        lines.append(f"• `{b.ref}` {format_duration(now - b.taken_at)} ago · {size(b.size)} · {escape(b.reason)}")
    lines.append(f"Revert one with `/rollback db {escape(env_name)} <version> [reason]`; restore a backup with "
                 f"`/rollback db {escape(env_name)} restore B-<id> [reason]`.")
    return "\n".join(lines)


def newest_revertible(db: TargetDatabase, source: MigrationSource, env: Environment, now: datetime) -> str | None:
    """The newest applied migration, when it was applied in the last 24 hours and has usable
    reverse SQL: what a database rollback started from the decision matrix proposes. Never an
    older one below it (the newest is the likely culprit); None when the newest does not qualify."""
    assert env.database_url_env and env.migrations_dir
    try:
        history = db.history(env.database_url_env)
        files = source.migrations(env.migrations_dir)
    except DatabaseError as error:
        raise Refused(escape(error.message)) from None
    if not history:
        return None
    head = history[-1]
    at = _applied_or_version_time(head.applied_at, head.version)
    file = files.get(head.version)
    recent = at is not None and at >= now - RECENT
    return head.version if recent and file is not None and file.reverse_sql and not file.problem else None


def prune(backups: Backups, open_incidents: Sequence[tuple[int, PlanBase]], env_name: str, env: Environment,
          now: datetime) -> str | None:
    """Prune backups older than ``backup_retention``, but never the newest backup taken
    before a still-open incident, nor one a still-open restore names."""
    if not env.database_url_env or not env.backup_dir:
        return None
    before = now - env.backup_retention
    recent = backups.recent(env_name, 1000)  # newest first
    open_ids: set[int] = set()
    named: set[int] = set()
    for incident_id, plan in open_incidents:
        open_ids.add(incident_id)
        if isinstance(plan, DatabasePlan) and plan.backup is not None:
            named.add(plan.backup.id)  # a restore still to run (or running) needs its backup
    newest_of: dict[int | None, int] = {}
    for b in recent:
        if b.incident_id in open_ids:
            newest_of.setdefault(b.incident_id, b.id)  # the newest backup of each open incident stays

    def keep(backup: Backup) -> bool:
        return backup.id in named or newest_of.get(backup.incident_id) == backup.id

    pruned = backups.prune(env_name, before, keep)
    return f"pruned {', '.join(b.ref for b in pruned)}" if pruned else None


def _applied_or_version_time(applied_at: datetime | None, version: str) -> datetime | None:
    """When a migration was applied, else the time its version names (``YYYYMMDDHHMMSS``, UTC)."""
    if applied_at is not None:
        return applied_at
    try:
        return datetime.strptime(version[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
