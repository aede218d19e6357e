"""Reverse SQL that would defeat the revert's one transaction is told apart from SQL that can run
inside it, by PostgreSQL's own parser."""

from __future__ import annotations

import pytest

from handlers.db_txn import transaction_problem


@pytest.mark.parametrize("sql", [
    "ALTER TABLE orders DROP COLUMN note;",
    "DROP VIEW order_totals; DROP TABLE orders;",
    "CREATE INDEX orders_status_idx ON orders (status);",
    "DROP INDEX orders_status_idx;",
    "REINDEX TABLE orders;",
    "ANALYZE orders;",
    "CLUSTER orders USING orders_pkey;",
    "SET LOCAL search_path = public;",
    "SET client_min_messages = warning; RESET client_min_messages;",
    "ALTER ROLE app SET statement_timeout = '5s';",  # for later sessions: not this transaction
    "ALTER DATABASE app SET lock_timeout = '1s';",
    "SELECT set_config('search_path', 'public', true);",
    "SELECT current_setting('lock_timeout');",
    "DO $$BEGIN PERFORM 1; END$$;",
    "ALTER TYPE order_status ADD VALUE 'void';",
    "ALTER TABLE p DETACH PARTITION c;",
    "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect = false);",
    "ALTER SUBSCRIPTION s SET PUBLICATION p WITH (refresh = false);",
    "DISCARD PLANS;",
    "-- nothing but a comment",
    "this is not SQL at all",  # the server says so, inside the transaction
])
def test_sql_that_runs_inside_one_transaction_passes(sql: str) -> None:
    assert transaction_problem(sql) is None


@pytest.mark.parametrize(("sql", "expected"), [
    ("BEGIN;", "BEGIN would act on Rollbot's one revert transaction"),
    ("START TRANSACTION;", "START TRANSACTION would act"),
    ("COMMIT;", "COMMIT would act"),
    ("END;", "COMMIT would act"),
    ("ROLLBACK;", "ROLLBACK would act"),
    ("ABORT;", "ROLLBACK would act"),
    ("SAVEPOINT s;", "SAVEPOINT would act"),
    ("PREPARE TRANSACTION 'x';", "PREPARE TRANSACTION would act"),
    ("SET lock_timeout = 0;", "SET lock_timeout would change a timeout Rollbot sets"),
    ("SET LOCAL lock_timeout = 0;", "SET lock_timeout"),
    ("SET SESSION statement_timeout TO '1h';", "SET statement_timeout"),
    ("set Statement_Timeout = default;", "SET statement_timeout"),
    ("SET idle_in_transaction_session_timeout = 0;", "SET idle_in_transaction_session_timeout"),
    ("RESET lock_timeout;", "RESET lock_timeout"),
    ("RESET ALL;", "RESET ALL would undo the timeouts"),
    ("SELECT set_config('statement_timeout', '0', true);", "set_config('statement_timeout', …)"),
    ("SELECT pg_catalog.set_config('LOCK_TIMEOUT', '0', false);", "set_config('lock_timeout', …)"),
    ("SELECT set_config(name, '0', true) FROM settings;", "set_config() of a setting that is not written out"),
    ("DO $$BEGIN EXECUTE 'SET lock_timeout = 0'; END$$;", "a DO block names lock_timeout"),
    ("VACUUM orders;", "VACUUM cannot run inside a transaction block"),
    ("VACUUM (ANALYZE) orders;", "VACUUM cannot run"),
    ("CREATE INDEX CONCURRENTLY i ON orders (status);", "CREATE INDEX CONCURRENTLY cannot run"),
    ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON orders (id);", "CREATE INDEX CONCURRENTLY"),
    ("DROP INDEX CONCURRENTLY IF EXISTS i;", "DROP INDEX CONCURRENTLY cannot run"),
    ("REINDEX INDEX CONCURRENTLY i;", "REINDEX CONCURRENTLY cannot run"),
    ("REINDEX (CONCURRENTLY) TABLE orders;", "REINDEX CONCURRENTLY"),
    ("REINDEX DATABASE app;", "REINDEX DATABASE cannot run"),
    ("REINDEX SYSTEM app;", "REINDEX SYSTEM"),
    ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY;", "DETACH PARTITION … CONCURRENTLY cannot run"),
    ("CREATE DATABASE other;", "CREATE DATABASE cannot run"),
    ("DROP DATABASE other;", "DROP DATABASE cannot run"),
    ("ALTER SYSTEM SET work_mem = '64MB';", "ALTER SYSTEM cannot run"),
    ("ALTER DATABASE app SET TABLESPACE fast;", "ALTER DATABASE … SET TABLESPACE cannot run"),
    ("CREATE TABLESPACE fast LOCATION '/fast';", "CREATE TABLESPACE cannot run"),
    ("DROP TABLESPACE fast;", "DROP TABLESPACE cannot run"),
    ("CLUSTER;", "CLUSTER without a table cannot run"),
    ("DISCARD ALL;", "DISCARD ALL cannot run"),
    ("CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p;", "CREATE SUBSCRIPTION cannot run"),
    ("ALTER SUBSCRIPTION s REFRESH PUBLICATION;", "REFRESH PUBLICATION cannot run"),
    ("ALTER SUBSCRIPTION s ADD PUBLICATION q;", "REFRESH PUBLICATION cannot run"),
    ("DROP SUBSCRIPTION s;", "DROP SUBSCRIPTION cannot run"),
])
def test_sql_that_would_defeat_the_transaction_is_refused(sql: str, expected: str) -> None:
    problem = transaction_problem(sql)
    assert problem is not None and expected in problem, problem
    assert problem.startswith("line 1: ")


def test_every_problem_is_named_with_its_line() -> None:
    sql = ("ALTER TABLE orders DROP COLUMN note;\n"
           "-- a comment: COMMIT\n"
           "\n"
           "  COMMIT;  SELECT 'é';\n"
           "/* and\n   more */ VACUUM orders;\n"
           "DROP VIEW v;\n")
    problem = transaction_problem(sql)
    assert problem is not None
    parts = problem.split("; ")
    assert [p.split(":", 1)[0] for p in parts] == ["line 4", "line 6"]
    assert "COMMIT" in parts[0] and "VACUUM" in parts[1]
    assert "run it by hand" in parts[1]


def test_text_in_strings_and_comments_is_not_a_statement() -> None:
    assert transaction_problem("COMMENT ON TABLE orders IS 'COMMIT; VACUUM; SET lock_timeout = 0';") is None
    assert transaction_problem("SELECT 1; -- SET statement_timeout = 0") is None
