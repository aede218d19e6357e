"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from integrations.schema import migrate


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool[Connection[DictRow]]]:
    migrate(database_url)
    with ConnectionPool(database_url, min_size=1, max_size=2, connection_class=Connection[DictRow],
                        kwargs={"row_factory": dict_row, "autocommit": True}) as opened:
        yield opened
