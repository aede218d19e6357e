"""Applies the bot's own schema: numbered SQL files in ``integrations/migrations``, each once,
in order, under an advisory lock so concurrent `rollbot migrate` runs are safe (idempotent)."""

from __future__ import annotations

import re
from importlib import resources

import psycopg

_LOCK_KEY = 0x526F6C6C626F74  # "Rollbot"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("integrations.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when already current)."""
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=False) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS rollbot_schema (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM rollbot_schema")}
            for version, name, sql in migration_files():
                if version in done:
                    continue
                conn.execute(sql.encode())
                conn.execute("INSERT INTO rollbot_schema (version, name) VALUES (%s, %s)", (version, name))
                applied.append(name)
    return applied


def current_version(database_url: str) -> int | None:
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('rollbot_schema') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute("SELECT max(version) FROM rollbot_schema").fetchone()
        return row[0] if row else None
