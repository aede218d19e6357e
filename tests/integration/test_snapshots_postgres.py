"""Env-var snapshots in Postgres: the contract the fake passes, and what only the real store can
show: values sealed at rest, a wrong key refused, a key rotated."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from handlers.env_snapshots import SnapshotUnreadable
from integrations.pg_snapshots import PostgresSnapshots
from integrations.secret_box import new_key
from tests.snapshot_contract import T0, VARS, SnapshotContract

KEY = new_key()


class TestPostgresSnapshots(SnapshotContract):
    @pytest.fixture
    def snapshots(self, pool: ConnectionPool[Connection[DictRow]]) -> PostgresSnapshots:
        self.pool = pool
        return PostgresSnapshots(pool, KEY)

    def keyless(self) -> PostgresSnapshots:
        return PostgresSnapshots(self.pool, None)


def test_values_are_sealed_at_rest(pool: ConnectionPool[Connection[DictRow]], database_url: str) -> None:
    PostgresSnapshots(pool, KEY).save("prj", T0, "scheduled", VARS)
    with psycopg.connect(database_url) as conn:
        dump = "\n".join(str(row) for row in conn.execute("SELECT * FROM env_snapshots"))
        raw = b"".join(bytes(r[0]) for r in conn.execute("SELECT sealed FROM env_snapshots"))
    assert "api.shop.test" not in dump and b"api.shop.test" not in raw and b"API_URL" not in raw


def test_a_wrong_key_is_refused_with_the_fix(pool: ConnectionPool[Connection[DictRow]]) -> None:
    info = PostgresSnapshots(pool, KEY).save("prj", T0, "scheduled", VARS)
    with pytest.raises(SnapshotUnreadable, match=f"snapshot S-{info.id}: ROLLBOT_SECRET_KEY cannot decrypt"):
        PostgresSnapshots(pool, new_key()).load(info.id)
    assert "Fernet keys" in (PostgresSnapshots(pool, "hunter2").unavailable() or "")


def test_a_key_is_rotated_by_putting_the_new_one_first(pool: ConnectionPool[Connection[DictRow]]) -> None:
    before = PostgresSnapshots(pool, KEY)
    info = before.save("prj", T0, "scheduled", VARS)
    fingerprint = before.fingerprint("prj/API_URL", "https://api.shop.test/v2")
    newer = new_key()
    assert PostgresSnapshots(pool, f"{newer},{KEY}").rotate() == 1
    after = PostgresSnapshots(pool, newer)  # the old key is no longer needed
    opened = after.load(info.id)
    assert opened is not None and opened.vars == VARS
    assert after.fingerprint("prj/API_URL", "https://api.shop.test/v2") == fingerprint  # approvals stay bound
