"""The team's application database, read and reverted over psycopg (implements
``handlers.db_ports.TargetDatabase``).

Every ``database`` argument is the name of an environment variable holding the target's URL. The
URL carries a password, so no message, exception or log of this module contains it: messages
name the variable instead, and any text from libpq or the server is scrubbed of the URL and the
password before it is used. Connections are short-lived (one per call) with ``connect_timeout``.

Object names are ``schema.name``, lowercase, as ``handlers.db_sql`` writes them (an unqualified
name is ``public``); the catalogue is compared case-insensitively. A name without a dot (or
ending in one) is a schema, as ``db_sql`` records ``CREATE SCHEMA``.

Usage::

    target = PostgresTarget()
    if (why := target.unavailable("PROD_DATABASE_URL")) is None:
        target.revert("PROD_DATABASE_URL", "20240101120000", "DROP TABLE orders;",
                      timedelta(seconds=5), timedelta(minutes=1))
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict

from handlers.db_ports import AppliedMigration, DatabaseError

HISTORY = "supabase_migrations.schema_migrations"
_SCHEMES = ("postgres://", "postgresql://")
_DEPENDENTS = """
WITH wanted AS (SELECT unnest(%(names)s::text[]) AS name),
rel AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE lower(n.nspname || '.' || c.relname) IN (SELECT name FROM wanted)),
typ AS (SELECT t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE lower(n.nspname || '.' || t.typname) IN (SELECT name FROM wanted)),
fun AS (SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE lower(n.nspname || '.' || p.proname) IN (SELECT name FROM wanted)),
tab AS (SELECT c.oid, c.relname, c.relkind, n.nspname,
               lower(n.nspname || '.' || c.relname) IN (SELECT name FROM wanted) AS named
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace)
SELECT DISTINCT 1, format('%%s %%s.%%s', CASE v.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END,
                          v.nspname, v.relname)
FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN tab v ON v.oid = r.ev_class
WHERE d.classid = 'pg_rewrite'::regclass AND NOT v.named
  AND ((d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM rel))
    OR (d.refclassid = 'pg_type'::regclass AND d.refobjid IN (SELECT oid FROM typ))
    OR (d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM fun)))
UNION
SELECT 2, format('foreign key %%s of %%s.%%s', con.conname, t.nspname, t.relname)
FROM pg_constraint con JOIN tab t ON t.oid = con.conrelid
WHERE con.contype = 'f' AND con.confrelid IN (SELECT oid FROM rel) AND NOT t.named
UNION
SELECT 3, format('column %%s.%%s.%%s (type %%s.%%s%%s)', t.nspname, t.relname, a.attname, tn.nspname, ty.typname,
                 CASE WHEN ty.oid = a.atttypid THEN '' ELSE '[]' END)
FROM pg_attribute a JOIN tab t ON t.oid = a.attrelid JOIN pg_type aty ON aty.oid = a.atttypid
JOIN pg_type ty ON ty.oid IN (a.atttypid, aty.typelem) JOIN pg_namespace tn ON tn.oid = ty.typnamespace
WHERE ty.oid IN (SELECT oid FROM typ) AND a.attnum > 0 AND NOT a.attisdropped
  AND t.relkind IN ('r', 'p', 'f') AND NOT t.named
UNION
SELECT 4, format('trigger %%s on %%s.%%s', tg.tgname, t.nspname, t.relname)
FROM pg_trigger tg JOIN tab t ON t.oid = tg.tgrelid
WHERE NOT tg.tgisinternal AND tg.tgfoid IN (SELECT oid FROM fun) AND NOT t.named
ORDER BY 1, 2
"""
_EXISTS = """
SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE lower(n.nspname) = %(schema)s AND lower(c.relname) = %(name)s)
    OR EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
               WHERE lower(n.nspname) = %(schema)s AND lower(t.typname) = %(name)s)
    OR EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE lower(n.nspname) = %(schema)s AND lower(p.proname) = %(name)s)
"""
_HAS_COLUMN = """
SELECT EXISTS (SELECT FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE lower(n.nspname) = %s AND lower(c.relname) = %s AND lower(a.attname) = %s
                 AND a.attnum > 0 AND NOT a.attisdropped)
"""


class PostgresTarget:
    def __init__(self, environ: Mapping[str, str] = os.environ, *, connect_timeout: int = 10) -> None:
        self._environ = environ
        self._connect_timeout = connect_timeout

    def unavailable(self, database: str) -> str | None:
        url = self._environ.get(database, "").strip()
        if not url:
            return f"{database} is not set"
        expected = "expected postgresql://user:password@host:5432/database"
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
        if scheme and not url.startswith(_SCHEMES):
            return f"{database} is a {scheme.group(1)}:// URL, not a postgresql:// one ({expected})"
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:  # its message quotes the URL: never shown
            return f"{database} is not a valid PostgreSQL URL ({expected})"
        ports = [p for p in str(params.get("port") or "").split(",") if p]
        if not all(p.isdigit() and 0 < int(p) < 65536 for p in ports):
            return f"{database} has a port that is not a number from 1 to 65535 ({expected})"
        return None

    def server_version(self, database: str) -> str:
        with self._session(database) as conn:
            return str(_one(conn, "SHOW server_version"))

    def history(self, database: str) -> list[AppliedMigration]:
        with self._session(database) as conn:
            tracked = _one(conn, "SELECT current_setting('track_commit_timestamp') = 'on'")
            stamp = "pg_xact_commit_timestamp(xmin)" if tracked else "NULL::timestamptz"
            try:
                rows = conn.execute(f"SELECT version, name, statements, {stamp} FROM {HISTORY} "
                                    "ORDER BY version").fetchall()
            except (errors.UndefinedTable, errors.InvalidSchemaName):
                raise DatabaseError(f"the database in {database} has no Supabase migration history "
                                    f"(there is no {HISTORY} table)") from None
        return [AppliedMigration(str(version), name or "", tuple(statements or ()), applied_at)
                for version, name, statements, applied_at in rows]

    def dependents(self, database: str, objects: Sequence[str]) -> list[str]:
        names = sorted({_qualified(name) for name in objects})
        with self._session(database) as conn:
            rows = conn.execute(_DEPENDENTS, {"names": names}).fetchall()
        return [str(description) for _, description in rows]

    def exists(self, database: str, name: str) -> bool:
        schema, _, rest = name.lower().partition(".")
        with self._session(database) as conn:
            if not rest:
                return bool(_one(conn, "SELECT EXISTS (SELECT FROM pg_namespace WHERE lower(nspname) = %s)",
                                 (schema,)))
            return bool(_one(conn, _EXISTS, {"schema": schema, "name": rest}))

    def has_column(self, database: str, table: str, column: str) -> bool:
        schema, _, name = _qualified(table).partition(".")
        with self._session(database) as conn:
            return bool(_one(conn, _HAS_COLUMN, (schema, name, column.lower())))

    def revert(self, database: str, version: str, sql: str, lock_timeout: timedelta,
               statement_timeout: timedelta) -> None:
        _refuse_transaction_control(sql)
        lock_ms, statement_ms = _ms(lock_timeout), _ms(statement_timeout)
        rolled_back = "The transaction rolled back: nothing was changed."
        with self._connect(database, autocommit=False) as conn:  # leaving on an error rolls back
            try:
                conn.execute(f"SET LOCAL lock_timeout = {lock_ms}")
                conn.execute(f"SET LOCAL statement_timeout = {statement_ms}")
                conn.execute(sql)  # no parameters: the simple protocol, several statements allowed
                deleted = conn.execute(f"DELETE FROM {HISTORY} WHERE version = %s", (version,)).rowcount
            except errors.LockNotAvailable as error:
                raise DatabaseError(f"a lock was not granted within lock_timeout ({_human(lock_ms)}): "
                                    f"{self._scrub(database, error)}. {rolled_back}", timed_out=True) from None
            except errors.QueryCanceled as error:
                if "statement timeout" not in str(error):
                    raise DatabaseError(f"the reverse SQL was cancelled: {self._scrub(database, error)}. "
                                        f"{rolled_back}") from None
                raise DatabaseError(f"the reverse SQL ran longer than statement_timeout ({_human(statement_ms)}). "
                                    f"{rolled_back}", timed_out=True) from None
            except psycopg.Error as error:
                what = "the reverse SQL failed" if error.sqlstate else "the connection broke before the commit"
                raise DatabaseError(f"{what}: {self._scrub(database, error)}. {rolled_back}") from None
            if deleted != 1:
                conn.rollback()
                raise DatabaseError(f"the history row of {version} is not there any more. {rolled_back}")
            try:
                conn.commit()
            except psycopg.Error as error:
                if error.sqlstate and error.sqlstate[:2] not in ("08", "57") and not conn.broken:
                    raise DatabaseError(f"the commit failed: {self._scrub(database, error)}. "
                                        f"{rolled_back}") from None
                raise DatabaseError(f"the connection to {database} broke during the commit "
                                    f"({self._scrub(database, error)}): the reverse SQL may or may not "
                                    "have been committed; read the migration history before anything else",
                                    uncertain=True) from None

    # -- connections and messages ----------------------------------------------------------
    def _connect(self, database: str, *, autocommit: bool) -> psycopg.Connection[Any]:
        problem = self.unavailable(database)
        if problem is not None:
            raise DatabaseError(problem)
        try:
            return psycopg.connect(self._environ[database].strip(), autocommit=autocommit,
                                   connect_timeout=self._connect_timeout, application_name="rollbot")
        except psycopg.Error as error:  # from None: libpq's text stays out of any traceback
            raise DatabaseError(f"cannot connect to the database in {database}: "
                                f"{self._scrub(database, error)}") from None

    @contextmanager
    def _session(self, database: str) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection for reading; psycopg errors become DatabaseError."""
        with self._connect(database, autocommit=True) as conn:
            try:
                yield conn
            except psycopg.Error as error:
                raise DatabaseError(f"reading the database in {database} failed: "
                                    f"{self._scrub(database, error)}") from None

    def _scrub(self, database: str, error: BaseException) -> str:
        """``error``'s text on one line, without the URL or its password."""
        text = " ".join(str(error).split())
        url = self._environ.get(database, "").strip()
        secrets = {url}
        try:
            secrets.add(str(conninfo_to_dict(url).get("password") or ""))
        except psycopg.Error:
            pass
        try:
            raw = urlsplit(url).password or ""
            secrets |= {raw, unquote(raw)}
        except ValueError:
            pass
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _one(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _qualified(name: str) -> str:
    name = name.lower()
    return name if "." in name else f"public.{name}"


def _ms(duration: timedelta) -> int:
    """Whole milliseconds, at least 1: a timeout of 0 would turn the timeout off."""
    return max(1, round(duration.total_seconds() * 1000))


def _human(ms: int) -> str:
    return f"{ms // 1000} s" if ms % 1000 == 0 else f"{ms} ms"


def _refuse_transaction_control(sql: str) -> None:
    """BEGIN, COMMIT or ROLLBACK in the reverse SQL would end the one transaction half-way."""
    try:
        statements = parse_sql(sql)
    except ParseError:
        return  # the server will say what is wrong, inside the transaction
    if any(isinstance(raw.stmt, ast.TransactionStmt) for raw in statements):
        raise DatabaseError("the reverse SQL has its own BEGIN, COMMIT or ROLLBACK: it must run inside "
                            "Rollbot's one transaction, so take those statements out. Nothing was changed.")
