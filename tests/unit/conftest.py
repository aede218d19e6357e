"""The unit tier runs on in-memory fakes: asking for a server here is a mistake, said at once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    raise pytest.UsageError("tests/unit uses no Postgres: use tests.fakes, or move the test to tests/integration")


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    raise pytest.UsageError("tests/unit uses no Redis: use tests.fakes, or move the test to tests/integration")
