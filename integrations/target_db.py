"""The team's application database, read and reverted over psycopg (implements
``handlers.db_ports.TargetDatabase``).

Every ``database`` argument is the name of an environment variable holding the target's URL. The
URL carries a password, so no message, exception or log of this module contains it: messages
name the variable instead, and any text from libpq or the server is scrubbed of the URL and the
password before it is used. Connections are short-lived (one per call) with ``connect_timeout``.

Object names are ``schema.name``, lowercase, as ``handlers.db_sql`` writes them; the catalogue is
compared case-insensitively. A name without a dot (or ending in one) is a schema, as ``db_sql``
records ``CREATE SCHEMA``; the table of a ``(table, column)`` without a dot is in ``public``.

``dependents`` reads ``pg_depend``: what depends (normally, or automatically from outside the
named objects) on the named relations, types, functions, schemas and columns, or on what is part
of them (indexes, owned sequences, row and array types), less what itself belongs to them.

A revert is one transaction that first takes the advisory lock ``(REVERT_LOCK_CLASS, key)``, then
bounds itself with ``idle_in_transaction_session_timeout`` (``IDLE_IN_TRANSACTION_TIMEOUT``),
``lock_timeout`` and ``statement_timeout``; ``settled`` waits on the same lock. Reverse SQL that
would defeat that (``handlers.db_txn.transaction_problem``) is refused before connecting.

Usage::

    target = PostgresTarget()
    if (why := target.unavailable("PROD_DATABASE_URL")) is None:
        target.revert("PROD_DATABASE_URL", "20240101120000", "DROP TABLE orders;",
                      timedelta(seconds=5), timedelta(minutes=1), key=12)  # key: the incident
        target.settled("PROD_DATABASE_URL", 12, timedelta(seconds=10))  # False: RB-12's revert still open
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict

from handlers.db_ports import AppliedMigration, DatabaseError
from integrations.pg_tools import secrets_of

HISTORY = "supabase_migrations.schema_migrations"
_SCHEMES = ("postgres://", "postgresql://")
REVERT_LOCK_CLASS = 0x52424442  # "RBDB": the first key of the advisory lock a revert holds
IDLE_IN_TRANSACTION_TIMEOUT = timedelta(seconds=30)  # shorter than the database kind's 2-minute execution lease
_INT4 = 1 << 32
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# What pg_depend says depends on the named objects. ``part_rel``/``part_typ``: the named relations,
# types, and what is part of them (indexes, sequences owned by their columns or by a named column,
# toast tables, row types, array types): what depends on those depends on the named objects too.
# Each dependent comes with the relation it IS (a relation, or a view through its _RETURN rule),
# the relation it is PART OF (an index, constraint, default, trigger, policy, rule or statistics
# object of a table; an owned sequence), the columns of that relation it uses, and whether it
# belongs to the named objects (then it is not reported).
_DEPENDENTS = """
WITH names AS (SELECT unnest(%(names)s::text[]) AS name),
wanted_cols AS (SELECT t AS tab, c AS col FROM unnest(%(tables)s::text[], %(columns)s::text[]) AS u(t, c)),
nsp AS (SELECT oid FROM pg_namespace WHERE lower(nspname) IN (SELECT name FROM names)),
rel AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE lower(n.nspname || '.' || c.relname) IN (SELECT name FROM names)),
col AS (SELECT a.attrelid AS relid, a.attnum FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace JOIN wanted_cols w
          ON w.tab = lower(n.nspname || '.' || c.relname) AND w.col = lower(a.attname)
        WHERE a.attnum > 0 AND NOT a.attisdropped),
owned AS (SELECT d.objid AS seq, d.refobjid AS relid, d.refobjsubid AS attnum FROM pg_depend d
          JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
          WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
            AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')),
part_rel AS (SELECT oid FROM rel
             UNION SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM rel)
             UNION SELECT reltoastrelid FROM pg_class WHERE oid IN (SELECT oid FROM rel) AND reltoastrelid <> 0
             UNION SELECT seq FROM owned WHERE relid IN (SELECT oid FROM rel)
             UNION SELECT o.seq FROM owned o JOIN col c ON c.relid = o.relid AND c.attnum = o.attnum),
typ AS (SELECT t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE lower(n.nspname || '.' || t.typname) IN (SELECT name FROM names)
          AND t.typrelid NOT IN (SELECT oid FROM rel)
        UNION SELECT reltype FROM pg_class WHERE oid IN (SELECT oid FROM part_rel) AND reltype <> 0),
part_typ AS (SELECT oid FROM typ UNION SELECT typarray FROM pg_type WHERE oid IN (SELECT oid FROM typ) AND typarray <> 0),
fun AS (SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE lower(n.nspname || '.' || p.proname) IN (SELECT name FROM names)),
refs AS (SELECT 'pg_class'::regclass AS classid, oid AS objid, NULL::int AS subid FROM part_rel
         UNION ALL SELECT 'pg_type'::regclass, oid, NULL FROM part_typ
         UNION ALL SELECT 'pg_proc'::regclass, oid, NULL FROM fun
         UNION ALL SELECT 'pg_namespace'::regclass, oid, NULL FROM nsp
         UNION ALL SELECT 'pg_class'::regclass, relid, attnum FROM col),
dep AS (SELECT DISTINCT d.classid, d.objid, d.objsubid, d.refclassid = 'pg_type'::regclass AS on_type
        FROM pg_depend d JOIN refs r ON d.refclassid = r.classid AND d.refobjid = r.objid
                                      AND (r.subid IS NULL OR d.refobjsubid = r.subid)
        WHERE d.deptype IN ('n', 'a')),
obj AS (
  SELECT dep.*, rw.rulename,
         CASE WHEN dep.classid = 'pg_class'::regclass AND (dep.objsubid = 0 OR cl.relkind IN ('v', 'm', 'c'))
                   AND cl.relkind NOT IN ('i', 'I', 't') THEN dep.objid  -- a view's column: the view
              WHEN dep.classid = 'pg_rewrite'::regclass AND rw.rulename = '_RETURN' THEN rw.ev_class END AS self,
         CASE WHEN dep.classid = 'pg_class'::regclass AND dep.objsubid > 0 AND cl.relkind NOT IN ('v', 'm', 'c')
                THEN dep.objid
              WHEN dep.classid = 'pg_class'::regclass AND cl.relkind IN ('i', 'I') THEN ix.indrelid
              WHEN dep.classid = 'pg_class'::regclass AND cl.relkind = 't' THEN
                (SELECT oid FROM pg_class WHERE reltoastrelid = dep.objid)
              WHEN dep.classid = 'pg_class'::regclass AND cl.relkind = 'S' THEN
                (SELECT relid FROM owned WHERE seq = dep.objid LIMIT 1)
              WHEN dep.classid = 'pg_rewrite'::regclass AND rw.rulename <> '_RETURN' THEN rw.ev_class
              WHEN dep.classid = 'pg_constraint'::regclass THEN nullif(con.conrelid, 0)
              WHEN dep.classid = 'pg_attrdef'::regclass THEN ad.adrelid
              WHEN dep.classid = 'pg_trigger'::regclass THEN tg.tgrelid
              WHEN dep.classid = 'pg_policy'::regclass THEN pol.polrelid
              WHEN dep.classid = 'pg_statistic_ext'::regclass THEN st.stxrelid
              WHEN dep.classid = 'pg_type'::regclass THEN nullif(ty.typrelid, 0) END AS part_of,
         (dep.classid = 'pg_proc'::regclass AND dep.objid IN (SELECT oid FROM fun))
           OR (dep.classid = 'pg_type'::regclass AND dep.objid IN (SELECT oid FROM part_typ))
           OR (dep.classid = 'pg_namespace'::regclass AND dep.objid IN (SELECT oid FROM nsp))
           OR (dep.classid = 'pg_constraint'::regclass AND con.contypid IN (SELECT oid FROM part_typ))
           OR (dep.classid = 'pg_trigger'::regclass AND tg.tgisinternal) AS named
  FROM dep
  LEFT JOIN pg_class cl ON dep.classid = 'pg_class'::regclass AND cl.oid = dep.objid
  LEFT JOIN pg_index ix ON ix.indexrelid = cl.oid
  LEFT JOIN pg_rewrite rw ON dep.classid = 'pg_rewrite'::regclass AND rw.oid = dep.objid
  LEFT JOIN pg_constraint con ON dep.classid = 'pg_constraint'::regclass AND con.oid = dep.objid
  LEFT JOIN pg_attrdef ad ON dep.classid = 'pg_attrdef'::regclass AND ad.oid = dep.objid
  LEFT JOIN pg_trigger tg ON dep.classid = 'pg_trigger'::regclass AND tg.oid = dep.objid
  LEFT JOIN pg_policy pol ON dep.classid = 'pg_policy'::regclass AND pol.oid = dep.objid
  LEFT JOIN pg_statistic_ext st ON dep.classid = 'pg_statistic_ext'::regclass AND st.oid = dep.objid
  LEFT JOIN pg_type ty ON dep.classid = 'pg_type'::regclass AND ty.oid = dep.objid
)
SELECT obj.classid::regclass::text, obj.self, obj.part_of,
       obj.named OR obj.self IN (SELECT oid FROM part_rel) OR obj.part_of IN (SELECT oid FROM part_rel)
         OR (obj.classid IN ('pg_class'::regclass, 'pg_constraint'::regclass, 'pg_attrdef'::regclass,
                             'pg_statistic_ext'::regclass) AND obj.self IS NULL AND obj.objsubid = 0
             AND obj.part_of IN (SELECT relid FROM col)
             AND (SELECT bool_and((x.refobjid, x.refobjsubid) IN (SELECT relid, attnum FROM col)) FROM pg_depend x
                  WHERE x.classid = obj.classid AND x.objid = obj.objid AND x.refclassid = 'pg_class'::regclass
                    AND x.refobjid = obj.part_of AND x.refobjsubid > 0)),
       coalesce((pg_identify_object(CASE WHEN obj.self IS NULL THEN obj.classid ELSE 'pg_class'::regclass END,
                                    coalesce(obj.self, obj.objid), 0)).schema, ''),
       CASE
         WHEN obj.self IS NOT NULL THEN
           (SELECT format('%%s %%s.%%s', CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                                          WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                                          WHEN 'c' THEN 'type' ELSE 'table' END, n.nspname, c.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = obj.self)
         WHEN obj.classid = 'pg_class'::regclass AND obj.objsubid > 0 THEN  -- a column of a table
           (SELECT format('column %%s.%%s.%%s%%s', n.nspname, c.relname, a.attname,
                          CASE WHEN obj.on_type THEN format(' (type %%s.%%s%%s)', tn.nspname, et.typname,
                                                           CASE WHEN et.oid = a.atttypid THEN '' ELSE '[]' END) END)
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_type at ON at.oid = a.atttypid
            JOIN pg_type et ON et.oid = CASE WHEN at.typelem <> 0 AND at.typlen = -1 THEN at.typelem ELSE at.oid END
            JOIN pg_namespace tn ON tn.oid = et.typnamespace
            WHERE a.attrelid = obj.objid AND a.attnum = obj.objsubid)
         WHEN obj.classid = 'pg_class'::regclass THEN
           (SELECT format('index %%s.%%s on %%s.%%s', n.nspname, c.relname, tn.nspname, t.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid
            JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
            WHERE c.oid = obj.objid)
         WHEN obj.classid = 'pg_rewrite'::regclass THEN
           (SELECT format('rule %%s on %%s.%%s', obj.rulename, n.nspname, c.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = obj.part_of)
         WHEN obj.classid = 'pg_constraint'::regclass THEN
           (SELECT format('%%s %%s of %%s%%s.%%s', CASE con.contype WHEN 'f' THEN 'foreign key'
                                                     WHEN 'c' THEN 'check constraint' WHEN 'p' THEN 'primary key'
                                                     WHEN 'u' THEN 'unique constraint'
                                                     WHEN 'x' THEN 'exclusion constraint'
                                                     WHEN 't' THEN 'constraint trigger' ELSE 'constraint' END,
                          con.conname, CASE WHEN con.conrelid = 0 THEN 'domain ' ELSE '' END,
                          coalesce(rn.nspname, tn.nspname), coalesce(c.relname, t.typname))
            FROM pg_constraint con
            LEFT JOIN pg_class c ON c.oid = con.conrelid LEFT JOIN pg_namespace rn ON rn.oid = c.relnamespace
            LEFT JOIN pg_type t ON t.oid = con.contypid LEFT JOIN pg_namespace tn ON tn.oid = t.typnamespace
            WHERE con.oid = obj.objid)
         WHEN obj.classid = 'pg_attrdef'::regclass THEN
           (SELECT format('default of %%s.%%s.%%s', n.nspname, c.relname, a.attname)
            FROM pg_attrdef ad JOIN pg_class c ON c.oid = ad.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum WHERE ad.oid = obj.objid)
         WHEN obj.classid = 'pg_trigger'::regclass THEN
           (SELECT format('trigger %%s on %%s.%%s', tg.tgname, n.nspname, c.relname)
            FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE tg.oid = obj.objid)
         WHEN obj.classid = 'pg_policy'::regclass THEN
           (SELECT format('policy %%s on %%s.%%s', pol.polname, n.nspname, c.relname)
            FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE pol.oid = obj.objid)
         WHEN obj.classid = 'pg_proc'::regclass THEN
           (SELECT format('%%s %%s.%%s(%%s)', CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
                                                 ELSE 'function' END,
                          n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = obj.objid)
         WHEN obj.classid = 'pg_type'::regclass THEN
           (SELECT format('%%s %%s.%%s', CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, n.nspname, t.typname)
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = obj.objid)
         ELSE pg_describe_object(obj.classid, obj.objid, obj.objsubid)
       END
FROM obj
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

    def dependents(self, database: str, objects: Sequence[str], columns: Sequence[tuple[str, str]] = ()) -> list[str]:
        names = sorted({_object_name(name) for name in objects} - {""})
        pairs = sorted({(_qualified(table), column.lower()) for table, column in columns})
        if not names and not pairs:
            return []
        params = {"names": names, "tables": [t for t, _ in pairs], "columns": [c for _, c in pairs]}
        with self._session(database) as conn:
            rows = conn.execute(_DEPENDENTS, params).fetchall()
        found = [(own, part_of, str(description)) for _, own, part_of, named, schema, description in rows
                 if not named and description and schema not in _SYSTEM_SCHEMAS and not schema.startswith("pg_temp")]
        reported = {own for own, _, _ in found if own is not None}
        # a part of something already reported (the owned sequence of a table in a named schema) goes with it
        return sorted({description for _, part_of, description in found if part_of not in reported})

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
               statement_timeout: timedelta, key: int) -> None:
        from handlers.db_txn import transaction_problem  # pglast: loaded on the first revert, not with the web

        problem = transaction_problem(sql)
        if problem is not None:
            raise DatabaseError(f"the reverse SQL cannot run inside Rollbot's one transaction: {problem}. "
                                "Nothing was changed.")
        lock_ms, statement_ms = _ms(lock_timeout), _ms(statement_timeout)
        rolled_back = "The transaction rolled back: nothing was changed."
        with self._connect(database, autocommit=False) as conn:  # leaving on an error rolls back
            try:
                # first: while this transaction is open, settled() on the same key waits for it
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (REVERT_LOCK_CLASS, _int4(key)))
                conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {_ms(IDLE_IN_TRANSACTION_TIMEOUT)}")
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

    def settled(self, database: str, key: int, wait: timedelta) -> bool:
        wait_ms = _ms(wait)
        with self._session(database) as conn:
            conn.execute(f"SET lock_timeout = {wait_ms}")
            conn.execute(f"SET statement_timeout = {wait_ms + 10_000}")  # not the role's default, if shorter
            try:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", (REVERT_LOCK_CLASS, _int4(key)))
            except errors.LockNotAvailable:
                return False  # a revert transaction holding it is still open
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (REVERT_LOCK_CLASS, _int4(key)))
            return True

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
        """``error``'s text on one line, without the URL or any password of it (``sslpassword`` too)."""
        text = " ".join(str(error).split())
        for secret in secrets_of(self._environ.get(database, "").strip()):
            text = text.replace(secret, "***")
        return text


def _one(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _object_name(name: str) -> str:
    """``schema.name`` as ``db_sql`` writes it; a name without a dot (or ending in one) is a schema."""
    name = name.strip().lower()
    return name[:-1] if name.endswith(".") else name


def _qualified(name: str) -> str:
    name = name.lower()
    return name if "." in name else f"public.{name}"


def _ms(duration: timedelta) -> int:
    """Whole milliseconds, at least 1: a timeout of 0 would turn the timeout off."""
    return max(1, round(duration.total_seconds() * 1000))


def _int4(key: int) -> int:
    """``key`` as the int4 an advisory lock's second key is (larger keys wrap: sharing a lock with
    another incident only makes one wait for the other)."""
    return (key + (1 << 31)) % _INT4 - (1 << 31)


def _human(ms: int) -> str:
    return f"{ms // 1000} s" if ms % 1000 == 0 else f"{ms} ms"
