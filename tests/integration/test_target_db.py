"""The target database adapter against a real Postgres: a Supabase-shaped migration history,
the catalogue's dependents, reverts that commit everything or nothing, timeouts, an uncertain
commit, and no password in any message."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest

from handlers.db_ports import DatabaseError
from integrations.target_db import IDLE_IN_TRANSACTION_TIMEOUT, REVERT_LOCK_CLASS, PostgresTarget
from sandbox.embedded import start_postgres

ENV = "PROD_DATABASE_URL"
SECRET = "s3cr3t-Pa55word"
LOCK = timedelta(milliseconds=200)
LONG = timedelta(seconds=30)
KEY = 12  # the incident
_counter = itertools.count(1)

MIGRATIONS = [
    ("20240101000000", "orders", [
        "CREATE TYPE order_status AS ENUM ('new', 'paid')",
        "CREATE TABLE orders (id serial PRIMARY KEY, status order_status NOT NULL DEFAULT 'new', total numeric)",
        "CREATE INDEX orders_status_idx ON orders (status)"]),
    ("20240102000000", "order_totals", [
        "CREATE VIEW order_totals AS SELECT status, sum(total) AS total FROM orders GROUP BY status",
        "CREATE MATERIALIZED VIEW order_counts AS SELECT count(*) AS n FROM public.orders"]),
    ("20240103000000", "items", [
        "CREATE TABLE items (id bigint PRIMARY KEY, order_id int REFERENCES orders (id))",
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
        "CREATE TRIGGER touch_items BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch()"]),
    ("20240104000000", "invoices", [
        "CREATE TABLE invoices (id bigint, status order_status, past order_status[])"]),
    ("20240105000000", "order_note", ["ALTER TABLE orders ADD COLUMN note text"]),
]


def _apply(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA supabase_migrations")
        conn.execute("CREATE TABLE supabase_migrations.schema_migrations "
                     "(version text PRIMARY KEY, statements text[], name text)")
        for version, name, statements in MIGRATIONS:
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO supabase_migrations.schema_migrations VALUES (%s, %s, %s)",
                             (version, statements, name))


@pytest.fixture
def empty_url(postgres_server_url: str) -> Iterator[str]:
    name = f"target_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server_url.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def url(empty_url: str) -> str:
    _apply(empty_url)
    return empty_url


@pytest.fixture
def target(url: str) -> PostgresTarget:
    return PostgresTarget({ENV: url})


def _with_password(url: str) -> str:
    """The same URL with a password in it (the test server trusts loopback: it is ignored)."""
    return url.replace("://postgres@", f"://postgres:{SECRET}@", 1)


def _versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1")]


def _columns(url: str, table: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns "
                                           "WHERE table_name = %s ORDER BY ordinal_position", (table,))]


def _fails(call: Callable[[], object]) -> DatabaseError:
    with pytest.raises(DatabaseError) as caught:
        call()
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value) + caught.value.message
    assert SECRET not in shown
    return caught.value


# -- unavailable ---------------------------------------------------------------------------------
def test_unavailable_says_what_is_wrong_without_connecting_or_echoing_the_url() -> None:
    assert PostgresTarget({}).unavailable(ENV) == "PROD_DATABASE_URL is not set"
    assert PostgresTarget({ENV: "  "}).unavailable(ENV) == "PROD_DATABASE_URL is not set"
    for bad in (f"postgresql://u:{SECRET}@[::1/db", f"postgresql://u:{SECRET}@h/db?bogus=1", f"host {SECRET}",
                f"postgresql://u:{SECRET}@h:port/db", f"mysql://u:{SECRET}@h/db"):
        problem = PostgresTarget({ENV: bad}).unavailable(ENV)
        assert problem is not None and problem.startswith(ENV) and SECRET not in problem, bad
    assert "mysql://" in (PostgresTarget({ENV: "mysql://h/db"}).unavailable(ENV) or "")
    assert PostgresTarget({ENV: f"postgresql://u:{SECRET}@127.0.0.1:1/db"}).unavailable(ENV) is None
    assert "is not set" in _fails(lambda: PostgresTarget({}).server_version(ENV)).message


# -- reading -------------------------------------------------------------------------------------
def test_server_version_is_what_the_server_reports(target: PostgresTarget, url: str) -> None:
    with psycopg.connect(url) as conn:
        assert target.server_version(ENV) == conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    assert target.server_version(ENV)[:2].isdigit()


def test_history_lists_every_row_oldest_first(target: PostgresTarget, url: str) -> None:
    history = target.history(ENV)
    assert [(m.version, m.name) for m in history] == [(v, n) for v, n, _ in MIGRATIONS]
    assert history[0].statements == tuple(MIGRATIONS[0][2])
    with psycopg.connect(url) as conn:
        tracked = conn.execute("SHOW track_commit_timestamp").fetchone()[0] == "on"  # type: ignore[index]
    assert all((m.applied_at is not None) == tracked for m in history)


def test_history_rows_with_nulls_still_read(target: PostgresTarget, url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO supabase_migrations.schema_migrations (version) VALUES ('20240106000000')")
    assert target.history(ENV)[-1].name == "" and target.history(ENV)[-1].statements == ()


def test_applied_at_comes_from_commit_timestamps_when_the_server_keeps_them() -> None:
    server = start_postgres()
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
        server.restart()
        _apply(server.url)
        history = PostgresTarget({ENV: server.url}).history(ENV)
    finally:
        server.stop()
    stamps = [m.applied_at for m in history]
    assert all(stamps) and stamps == sorted(stamps)  # type: ignore[type-var]


def test_a_database_without_supabase_history_says_so(empty_url: str) -> None:
    target = PostgresTarget({ENV: empty_url})
    assert "has no Supabase migration history" in _fails(lambda: target.history(ENV)).message
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA supabase_migrations")
    assert "has no Supabase migration history" in _fails(lambda: target.history(ENV)).message


def test_dependents_come_from_the_catalogue(target: PostgresTarget) -> None:
    assert target.dependents(ENV, ["public.orders"]) == [
        "foreign key items_order_id_fkey of public.items", "materialized view public.order_counts",
        "view public.order_totals"]
    assert target.dependents(ENV, ["public.orders", "public.order_totals", "public.items"]) == [
        "materialized view public.order_counts"]
    assert target.dependents(ENV, ["public.order_status"]) == [
        "column public.invoices.past (type public.order_status[])",
        "column public.invoices.status (type public.order_status)",
        "column public.orders.status (type public.order_status)",
        "default of public.orders.status",
        "view public.order_totals"]
    assert target.dependents(ENV, ["public.order_status", "public.orders"]) == [
        "column public.invoices.past (type public.order_status[])",
        "column public.invoices.status (type public.order_status)",
        "foreign key items_order_id_fkey of public.items", "materialized view public.order_counts",
        "view public.order_totals"]
    assert target.dependents(ENV, ["public.touch"]) == ["trigger touch_items on public.items"]
    assert target.dependents(ENV, ["public.items", "public.touch"]) == []
    assert target.dependents(ENV, ["public.nothing", "nowhere.orders", "nowhere"]) == []
    assert target.dependents(ENV, []) == []
    assert target.dependents(ENV, ["PUBLIC.Orders"]) == target.dependents(ENV, ["public.orders"])


EXTRA = [
    "CREATE TABLE customers (id bigint PRIMARY KEY, name text)",
    "ALTER TABLE customers ADD COLUMN tier text UNIQUE CHECK (tier <> '') DEFAULT 'basic'",
    "CREATE VIEW customer_tiers AS SELECT id, tier FROM customers",
    "CREATE INDEX customers_tier_name ON customers (tier, name)",
    "CREATE TABLE legacy_orders (id int DEFAULT nextval('public.orders_id_seq'), copy orders)",
    "CREATE FUNCTION positive(numeric) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT $1 > 0'",
    "CREATE TABLE payments (amount numeric CONSTRAINT payments_positive CHECK (positive(amount)))",
    "CREATE INDEX payments_sign ON payments (positive(amount))",
    "ALTER TABLE payments ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY recent ON payments USING (amount <= (SELECT count(*) FROM items))",
    "CREATE SCHEMA billing",
    "CREATE TABLE billing.ledger (id serial PRIMARY KEY, note text)",
    "CREATE INDEX ledger_note ON billing.ledger (note)",
    "CREATE FUNCTION billing.balance() RETURNS int LANGUAGE sql AS 'SELECT 1'",
]


@pytest.fixture
def extra(target: PostgresTarget, url: str) -> PostgresTarget:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in EXTRA:
            conn.execute(statement)
    return target


def test_what_depends_on_a_column(extra: PostgresTarget) -> None:
    assert extra.dependents(ENV, [], columns=[("public.customers", "tier")]) == [
        "index public.customers_tier_name on public.customers", "view public.customer_tiers"]
    assert extra.dependents(ENV, [], columns=[("customers", "TIER")]) == extra.dependents(
        ENV, [], columns=[("public.customers", "tier")])
    assert extra.dependents(ENV, [], columns=[("public.customers", "name")]) == [
        "index public.customers_tier_name on public.customers"]
    assert extra.dependents(ENV, ["public.customer_tiers"], columns=[("public.customers", "tier")]) == [
        "index public.customers_tier_name on public.customers"]
    assert extra.dependents(ENV, [], columns=[("public.orders", "id")]) == [  # and its serial's sequence
        "default of public.legacy_orders.id", "foreign key items_order_id_fkey of public.items"]
    assert extra.dependents(ENV, [], columns=[("public.orders", "note"), ("public.nothing", "x")]) == []


def test_defaults_checks_indexes_and_policies_of_other_tables(extra: PostgresTarget) -> None:
    assert extra.dependents(ENV, ["public.orders_id_seq"]) == [
        "default of public.legacy_orders.id", "default of public.orders.id"]
    assert extra.dependents(ENV, ["public.orders"]) == [
        "column public.legacy_orders.copy (type public.orders)", "default of public.legacy_orders.id",
        "foreign key items_order_id_fkey of public.items", "materialized view public.order_counts",
        "view public.order_totals"]
    assert extra.dependents(ENV, ["public.positive"]) == [
        "check constraint payments_positive of public.payments", "index public.payments_sign on public.payments"]
    assert extra.dependents(ENV, ["public.items", "public.touch"]) == ["policy recent on public.payments"]
    assert extra.dependents(ENV, ["public.positive", "public.payments"]) == []


def test_a_schema_has_what_is_in_it_as_dependents(extra: PostgresTarget) -> None:
    assert extra.dependents(ENV, ["billing"]) == ["function billing.balance()", "table billing.ledger"]
    assert extra.dependents(ENV, ["billing.", "billing.ledger", "billing.balance"]) == []


def test_what_belongs_to_a_named_table_is_not_a_dependent(extra: PostgresTarget) -> None:
    """Its own indexes, constraints, defaults, owned sequence and row type go with it."""
    assert extra.dependents(ENV, ["public.customers"]) == ["view public.customer_tiers"]
    assert extra.dependents(ENV, ["public.payments"]) == []
    assert extra.dependents(ENV, ["billing.ledger"]) == []
    assert extra.dependents(ENV, ["public.customers", "public.customer_tiers"]) == []


def test_exists_knows_relations_types_functions_and_schemas(target: PostgresTarget) -> None:
    for name in ("public.orders", "public.order_totals", "public.order_counts", "public.orders_status_idx",
                 "public.orders_id_seq", "public.order_status", "public.touch", "supabase_migrations",
                 "supabase_migrations.schema_migrations", "public", "public.ORDERS"):
        assert target.exists(ENV, name), name
    for name in ("public.nothing", "nothing", "private.orders", "public.touch_items", "supabase"):
        assert not target.exists(ENV, name), name


def test_has_column(target: PostgresTarget) -> None:
    assert target.has_column(ENV, "public.orders", "note")
    assert target.has_column(ENV, "orders", "status")
    assert not target.has_column(ENV, "public.orders", "nope")
    assert not target.has_column(ENV, "public.nothing", "note")
    assert not target.has_column(ENV, "public.orders", "ctid")  # a system column is not a column


# -- revert --------------------------------------------------------------------------------------
def test_revert_commits_the_sql_and_the_history_row_removal_together(target: PostgresTarget, url: str) -> None:
    target.revert(ENV, "20240105000000", "ALTER TABLE orders DROP COLUMN note;\n"
                  "COMMENT ON TABLE orders IS '100% reverted';", LOCK, LONG, KEY)
    assert "note" not in _columns(url, "orders")
    assert "20240105000000" not in _versions(url)
    assert not target.has_column(ENV, "public.orders", "note")


def test_a_failing_reverse_sql_changes_nothing(target: PostgresTarget, url: str) -> None:
    error = _fails(lambda: target.revert(ENV, "20240105000000", "ALTER TABLE orders DROP COLUMN note;\n"
                                         "SELECT 1 / 0;", LOCK, LONG, KEY))
    assert "division by zero" in error.message and "rolled back" in error.message
    assert not error.timed_out and not error.uncertain
    assert "note" in _columns(url, "orders") and "20240105000000" in _versions(url)


def test_a_held_lock_ends_in_lock_timeout_and_changes_nothing(target: PostgresTarget, url: str) -> None:
    with psycopg.connect(url) as holder:
        holder.execute("SELECT count(*) FROM orders")  # ACCESS SHARE, held until the transaction ends
        started = time.monotonic()
        error = _fails(lambda: target.revert(ENV, "20240105000000", "ALTER TABLE orders DROP COLUMN note;",
                                             LOCK, LONG, KEY))
        assert time.monotonic() - started < 5
        holder.rollback()
    assert error.timed_out and not error.uncertain
    assert "lock_timeout (200 ms)" in error.message and "nothing was changed" in error.message
    assert "note" in _columns(url, "orders") and "20240105000000" in _versions(url)


def test_a_long_statement_ends_in_statement_timeout(target: PostgresTarget, url: str) -> None:
    error = _fails(lambda: target.revert(ENV, "20240105000000", "ALTER TABLE orders DROP COLUMN note;\n"
                                         "SELECT pg_sleep(5);", LOCK, timedelta(milliseconds=300), KEY))
    assert error.timed_out and "statement_timeout (300 ms)" in error.message
    assert "note" in _columns(url, "orders") and "20240105000000" in _versions(url)


def test_a_missing_history_row_rolls_the_sql_back(target: PostgresTarget, url: str) -> None:
    error = _fails(lambda: target.revert(ENV, "20990101000000", "DROP VIEW order_totals;", LOCK, LONG, KEY))
    assert "the history row of 20990101000000 is not there any more" in error.message
    assert target.exists(ENV, "public.order_totals") and len(_versions(url)) == len(MIGRATIONS)


def test_transaction_control_in_the_reverse_sql_is_refused(target: PostgresTarget, url: str) -> None:
    error = _fails(lambda: target.revert(ENV, "20240105000000", "ALTER TABLE orders DROP COLUMN note;\n"
                                         "COMMIT;\nSELECT 1 / 0;", LOCK, LONG, KEY))
    assert "COMMIT" in error.message
    assert "note" in _columns(url, "orders") and "20240105000000" in _versions(url)


@pytest.mark.parametrize("sql", [
    "SET lock_timeout = 0;", "SET LOCAL statement_timeout = 0;", "RESET idle_in_transaction_session_timeout;",
    "RESET ALL;", "SELECT set_config('lock_timeout', '0', true);", "VACUUM orders;",
    "CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note);", "DROP INDEX CONCURRENTLY orders_status_idx;",
    "REINDEX TABLE CONCURRENTLY orders;", "CREATE DATABASE elsewhere;", "ALTER SYSTEM SET work_mem = '1GB';",
])
def test_sql_that_defeats_the_transaction_is_refused_before_connecting(sql: str) -> None:
    nowhere = PostgresTarget({ENV: f"postgresql://postgres:{SECRET}@127.0.0.1:1/db"}, connect_timeout=1)
    error = _fails(lambda: nowhere.revert(ENV, "20240105000000", f"ALTER TABLE orders DROP COLUMN note;\n{sql}",
                                          LOCK, LONG, KEY))
    assert error.message.startswith("the reverse SQL cannot run inside Rollbot's one transaction: line 2: ")
    assert "Nothing was changed." in error.message and "cannot connect" not in error.message


def _held_by_me(key: int) -> str:
    """SQL that fails (division by zero) unless this session holds the revert lock of ``key``."""
    return (f"SELECT 1 / count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            f"AND classid = {REVERT_LOCK_CLASS} AND objid = {key} AND objsubid = 2 AND granted;")


def test_a_revert_holds_the_incidents_advisory_lock_and_an_idle_timeout(target: PostgresTarget, url: str) -> None:
    assert IDLE_IN_TRANSACTION_TIMEOUT < timedelta(minutes=2)
    target.revert(ENV, "20240105000000", "ALTER TABLE orders DROP COLUMN note;\n" + _held_by_me(KEY) +
                  "\nSELECT 1 / (current_setting('idle_in_transaction_session_timeout') = '30s')::int;",
                  LOCK, LONG, KEY)
    assert "20240105000000" not in _versions(url)
    error = _fails(lambda: target.revert(ENV, "20240104000000", _held_by_me(KEY), LOCK, LONG, KEY + 1))
    assert "division by zero" in error.message  # another key: another lock
    target.revert(ENV, "20240104000000", _held_by_me(5), LOCK, LONG, (1 << 32) + 5)  # wider keys wrap
    assert "20240104000000" not in _versions(url)


def test_settled_waits_for_an_open_revert_of_the_same_key(target: PostgresTarget, url: str) -> None:
    assert target.settled(ENV, KEY, LOCK)
    with psycopg.connect(url) as holder:  # an executor's revert transaction, still open
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (REVERT_LOCK_CLASS, KEY))
        started = time.monotonic()
        assert not target.settled(ENV, KEY, LOCK)
        assert 0.15 < time.monotonic() - started < 5
        assert target.settled(ENV, KEY + 1, LOCK)
        threading.Timer(0.3, holder.rollback).start()
        assert target.settled(ENV, KEY, timedelta(seconds=10))  # it ended while waited for
    with psycopg.connect(url) as conn:
        held = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
    assert held == (0,)  # settled() let go of it


def test_settled_waits_for_a_running_revert(target: PostgresTarget, url: str) -> None:
    done = threading.Event()

    def revert() -> None:
        target.revert(ENV, "20240105000000", "ALTER TABLE orders DROP COLUMN note;\nSELECT pg_sleep(1);",
                      LOCK, LONG, KEY)
        done.set()

    threading.Thread(target=revert, daemon=True).start()
    time.sleep(0.3)
    assert not target.settled(ENV, KEY, LOCK)
    assert target.settled(ENV, KEY, timedelta(seconds=10)) and done.wait(5)
    assert "20240105000000" not in _versions(url)


def test_settled_on_an_unreachable_database_raises(url: str) -> None:
    nowhere = PostgresTarget({ENV: f"postgresql://postgres:{SECRET}@127.0.0.1:1/db"}, connect_timeout=1)
    assert "cannot connect" in _fails(lambda: nowhere.settled(ENV, KEY, LOCK)).message


class _DropAtCommit:
    """A TCP proxy to Postgres that passes COMMIT on, then cuts both sides before the answer."""

    def __init__(self, port: int) -> None:
        self.server_port = port
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.server_port))
        threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()
        self._pump(client, server, True)

    def _pump(self, source: socket.socket, sink: socket.socket, watch: bool) -> None:
        try:
            while data := source.recv(65536):
                if self.cut.is_set():
                    return  # the server's answer to COMMIT is dropped
                if watch and b"COMMIT" in data:
                    self.cut.set()
                    sink.sendall(data)
                    time.sleep(0.5)  # the server commits
                    for end in (source, sink):
                        end.shutdown(socket.SHUT_RDWR)
                        end.close()
                    return
                sink.sendall(data)
        except OSError:
            return


def test_a_connection_lost_during_commit_is_uncertain(url: str) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    proxy = _DropAtCommit(port)
    proxied = _with_password(url).replace(f":{port}/", f":{proxy.port}/") + "?sslmode=disable"
    target = PostgresTarget({ENV: proxied})
    error = _fails(lambda: target.revert(ENV, "20240105000000", "ALTER TABLE orders DROP COLUMN note;",
                                         LOCK, LONG, KEY))
    assert error.uncertain and not error.timed_out and "may or may not" in error.message
    assert "20240105000000" not in _versions(url)  # this time it had committed: hence "uncertain"
    proxy.listener.close()


# -- no password anywhere ------------------------------------------------------------------------
def test_the_password_never_appears_in_an_error(url: str) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    port = url.rsplit(":", 1)[1].split("/")[0]
    unreachable = PostgresTarget({ENV: _with_password(url).replace(f":{port}/", f":{dead_port}/")},
                                 connect_timeout=2)
    for call in (lambda: unreachable.server_version(ENV), lambda: unreachable.history(ENV),
                 lambda: unreachable.dependents(ENV, ["public.orders"]),
                 lambda: unreachable.revert(ENV, "20240105000000", "SELECT 1;", LOCK, LONG, KEY)):
        assert "cannot connect to the database in PROD_DATABASE_URL" in _fails(call).message
    with_key = PostgresTarget({ENV: _with_password(url).replace(f":{port}/", f":{dead_port}/")
                               + f"?sslpassword={SECRET}&sslmode=disable"}, connect_timeout=2)
    assert "cannot connect" in _fails(lambda: with_key.settled(ENV, KEY, LOCK)).message
    reachable = PostgresTarget({ENV: _with_password(url)})
    assert reachable.server_version(ENV)
    _fails(lambda: reachable.revert(ENV, "20240105000000", f"SELECT '{SECRET}'::int;", LOCK, LONG, KEY))
    missing_db = PostgresTarget({ENV: _with_password(url).rsplit("/", 1)[0] + "/no_such_database"})
    assert "no_such_database" in _fails(lambda: missing_db.history(ENV)).message
