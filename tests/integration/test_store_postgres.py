"""The store's contract, on Postgres: the same tests the in-memory fake passes."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from handlers.code import CodeKind
from handlers.kind import KindRegistry
from integrations.pg_store import PostgresStore
from tests.follow_ups_contract import FollowUpsContract
from tests.store_contract import StoreContract


class TestPostgresStore(StoreContract, FollowUpsContract):
    @pytest.fixture
    def store(self, database_url: str) -> Iterator[PostgresStore]:
        s = PostgresStore(database_url, KindRegistry([CodeKind(provider=None)]).load_plan, max_size=10)  # type: ignore[arg-type]
        self.url = database_url
        yield s
        s.close()

    def expire_leases(self, store: PostgresStore) -> None:  # type: ignore[override]
        with psycopg.connect(self.url, autocommit=True) as conn:  # the lease is on the database's clock
            conn.execute("UPDATE incidents SET exec_lease_until = now() - interval '1 second' "
                         "WHERE exec_lease_until IS NOT NULL")
