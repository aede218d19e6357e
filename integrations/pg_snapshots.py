"""Env-var snapshots in the bot's Postgres, sealed with ``ROLLBOT_SECRET_KEY`` (implements
``handlers.env_snapshots.EnvSnapshots``). Plaintext values exist only in memory: they are sealed
before the INSERT and opened after the SELECT."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from handlers.env_snapshots import Snapshot, SnapshotInfo, SnapshotUnreadable, SnapshotVar
from integrations.secret_box import SecretBox, SecretKeyError, fingerprint

COLUMNS = "id, project, taken_at, reason, variables, unreadable"


class PostgresSnapshots:
    def __init__(self, pool: ConnectionPool[Connection[DictRow]], secret_key: str | None) -> None:
        self._pool = pool
        self._box: SecretBox | None = None
        self._problem: str | None = None
        self._mac_key: bytes | None = None
        self._mac_lock = threading.Lock()
        try:
            self._box = SecretBox(secret_key or "")
        except SecretKeyError as error:
            self._problem = str(error)

    def unavailable(self) -> str | None:
        return self._problem

    def _sealer(self) -> SecretBox:
        if self._box is None:
            raise SnapshotUnreadable(self._problem or "ROLLBOT_SECRET_KEY is not set")
        return self._box

    def save(self, project: str, taken_at: datetime, reason: str, vars: Sequence[SnapshotVar]) -> SnapshotInfo:
        sealed = self._sealer().seal(json.dumps([_var_json(v) for v in vars]).encode())
        unreadable = sum(1 for v in vars if v.value is None)
        with self._pool.connection() as conn:
            row = conn.execute(
                f"INSERT INTO env_snapshots (project, taken_at, checked_at, reason, variables, unreadable, sealed) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                (project, taken_at, taken_at, reason, len(vars), unreadable, sealed)).fetchone()
        assert row is not None
        return _info(row)

    def touch(self, snapshot_id: int, at: datetime) -> None:
        with self._pool.connection() as conn:
            conn.execute("UPDATE env_snapshots SET checked_at = greatest(checked_at, %s) WHERE id = %s",
                         (at, snapshot_id))

    def last_checked(self, project: str) -> datetime | None:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT max(checked_at) AS at FROM env_snapshots WHERE project = %s",
                               (project,)).fetchone()
        return row["at"] if row else None

    def snapshots(self, project: str, limit: int) -> list[SnapshotInfo]:
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {COLUMNS} FROM env_snapshots WHERE project = %s ORDER BY id DESC LIMIT %s",
                                (project, limit)).fetchall()
        return [_info(r) for r in rows]

    def load(self, snapshot_id: int) -> Snapshot | None:
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT {COLUMNS}, sealed FROM env_snapshots WHERE id = %s",
                               (snapshot_id,)).fetchone()
        if row is None:
            return None
        try:
            opened = self._sealer().open(bytes(row["sealed"]))
        except SecretKeyError as error:
            raise SnapshotUnreadable(f"snapshot S-{snapshot_id}: {error}") from None
        return Snapshot(_info(row), tuple(_var(v) for v in json.loads(opened)))

    def fingerprint(self, scope: str, value: str) -> str:
        return fingerprint(self._fingerprint_key(), scope, value)

    def _fingerprint_key(self) -> bytes:
        """Made once per database (the first process to ask makes it), kept sealed."""
        with self._mac_lock:
            if self._mac_key is None:
                box = self._sealer()
                with self._pool.connection() as conn:
                    conn.execute("INSERT INTO env_fingerprint_key (id, sealed) VALUES (1, %s) ON CONFLICT DO NOTHING",
                                 (box.seal(os.urandom(32)),))
                    row = conn.execute("SELECT sealed FROM env_fingerprint_key WHERE id = 1").fetchone()
                assert row is not None
                try:
                    self._mac_key = box.open(bytes(row["sealed"]))
                except SecretKeyError as error:
                    raise SnapshotUnreadable(f"the fingerprint key: {error}") from None
            return self._mac_key

    def rotate(self) -> int:
        """Re-seal every snapshot with the newest key (after putting a new key first); returns how many."""
        box = self._sealer()
        count = 0
        with self._pool.connection() as conn, conn.transaction():
            for row in conn.execute("SELECT id, sealed FROM env_snapshots ORDER BY id FOR UPDATE").fetchall():
                try:
                    resealed = box.rotate(bytes(row["sealed"]))
                except SecretKeyError as error:
                    raise SnapshotUnreadable(f"snapshot S-{row['id']}: {error}") from None
                conn.execute("UPDATE env_snapshots SET sealed = %s WHERE id = %s", (resealed, row["id"]))
                count += 1
            key = conn.execute("SELECT sealed FROM env_fingerprint_key WHERE id = 1 FOR UPDATE").fetchone()
            if key is not None:
                try:
                    resealed = box.rotate(bytes(key["sealed"]))
                except SecretKeyError as error:
                    raise SnapshotUnreadable(f"the fingerprint key: {error}") from None
                conn.execute("UPDATE env_fingerprint_key SET sealed = %s WHERE id = 1", (resealed,))
        return count


def _var_json(var: SnapshotVar) -> dict[str, Any]:
    return {"key": var.key, "id": var.id, "type": var.type, "target": list(var.target), "value": var.value}


def _var(data: dict[str, Any]) -> SnapshotVar:
    return SnapshotVar(str(data["key"]), str(data["id"]), str(data["type"]), tuple(data["target"]), data["value"])


def _info(row: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(row["id"], row["project"], row["taken_at"], row["reason"], row["variables"], row["unreadable"])
