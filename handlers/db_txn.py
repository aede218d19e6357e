"""Whether reverse SQL can run inside Rollbot's one revert transaction, read with PostgreSQL's own
parser (``pglast``): the core asks at plan time, the target adapter again before it connects.

A revert is one transaction that Rollbot opens, bounds (``lock_timeout``, ``statement_timeout``,
``idle_in_transaction_session_timeout``) and commits together with the removal of the history
row. Reverse SQL must not defeat that: no transaction control of its own, no change to those
timeouts (``SET``/``RESET`` of them, ``RESET ALL``, ``set_config()`` of them, a ``DO`` block that
names them), and nothing PostgreSQL refuses to run inside a transaction block (``VACUUM``,
``CREATE``/``DROP``/``REINDEX`` … ``CONCURRENTLY``, ``CREATE DATABASE``, ``ALTER SYSTEM`` …).

SQL the parser rejects gets no verdict here (None): the server says what is wrong, inside the
transaction, which then rolls back.

Usage::

    problem = transaction_problem("CREATE INDEX CONCURRENTLY i ON t (a);")
    # "line 1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block, …"
"""

from __future__ import annotations

import re
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import (
    AlterSubscriptionType,
    AlterTableType,
    DiscardMode,
    ReindexObjectType,
    TransactionStmtKind,
    VariableSetKind,
)
from pglast.parser import ParseError
from pglast.visitors import Visitor

TIMEOUTS = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
_TIMEOUT_WORD = re.compile(r"\b(" + "|".join(TIMEOUTS) + r")\b", re.IGNORECASE)
_TRANSACTION_WORDS = {
    TransactionStmtKind.TRANS_STMT_BEGIN: "BEGIN", TransactionStmtKind.TRANS_STMT_START: "START TRANSACTION",
    TransactionStmtKind.TRANS_STMT_COMMIT: "COMMIT", TransactionStmtKind.TRANS_STMT_ROLLBACK: "ROLLBACK",
    TransactionStmtKind.TRANS_STMT_SAVEPOINT: "SAVEPOINT", TransactionStmtKind.TRANS_STMT_RELEASE: "RELEASE",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: "ROLLBACK TO SAVEPOINT",
    TransactionStmtKind.TRANS_STMT_PREPARE: "PREPARE TRANSACTION",
    TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED: "COMMIT PREPARED",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED: "ROLLBACK PREPARED",
}
_PUBLICATION_CHANGES = (AlterSubscriptionType.ALTER_SUBSCRIPTION_SET_PUBLICATION,
                        AlterSubscriptionType.ALTER_SUBSCRIPTION_ADD_PUBLICATION,
                        AlterSubscriptionType.ALTER_SUBSCRIPTION_DROP_PUBLICATION)
_OUTSIDE_ONLY = "cannot run inside a transaction block, and a revert is one transaction"


def transaction_problem(sql: str) -> str | None:
    """Why ``sql`` cannot run inside the revert transaction (every statement that cannot, by
    line), or None."""
    try:
        statements = parse_sql(sql)
    except ParseError:
        return None
    encoded = sql.encode()
    problems: list[str] = []
    for raw in statements:
        why = _statement_problem(raw.stmt)
        if why:
            line = encoded[:raw.stmt_location or 0].count(b"\n") + 1
            problems.append(f"line {line}: {why}")
    return "; ".join(problems) or None


def _statement_problem(stmt: Any) -> str | None:
    if isinstance(stmt, ast.TransactionStmt):
        word = _TRANSACTION_WORDS.get(stmt.kind) if stmt.kind is not None else None
        word = word or "transaction control"
        return (f"{word} would act on Rollbot's one revert transaction (which it begins and commits "
                "itself, with the history row): take it out")
    if isinstance(stmt, ast.VariableSetStmt):
        if stmt.kind == VariableSetKind.VAR_RESET_ALL:
            return (f"RESET ALL would undo the timeouts Rollbot sets for the revert ({', '.join(TIMEOUTS)}): "
                    "take it out")
        name = (stmt.name or "").lower()
        if name in TIMEOUTS:
            verb = "RESET" if stmt.kind == VariableSetKind.VAR_RESET else "SET"
            return f"{verb} {name} would change a timeout Rollbot sets for the revert: take it out"
        return None
    outside = _outside_only(stmt)
    if outside:
        return f"{outside} {_OUTSIDE_ONLY}: run it by hand, outside Rollbot"
    if isinstance(stmt, ast.DoStmt):
        body = " ".join(str(d.arg.sval) for d in stmt.args or ()
                        if isinstance(d, ast.DefElem) and d.defname == "as" and isinstance(d.arg, ast.String))
        named = sorted({m.lower() for m in _TIMEOUT_WORD.findall(body)})
        if named:
            return f"a DO block names {', '.join(named)}, a timeout Rollbot sets for the revert: take that out"
    calls = _SetConfigCalls()
    calls(stmt)
    return calls.problem


def _outside_only(stmt: Any) -> str | None:
    """The statement as people know it, when PostgreSQL refuses it inside a transaction block."""
    if isinstance(stmt, ast.VacuumStmt):
        return "VACUUM" if stmt.is_vacuumcmd else None
    if isinstance(stmt, ast.IndexStmt):
        return "CREATE INDEX CONCURRENTLY" if stmt.concurrent else None
    if isinstance(stmt, ast.DropStmt):
        return "DROP INDEX CONCURRENTLY" if stmt.concurrent else None
    if isinstance(stmt, ast.ReindexStmt):
        if any(isinstance(p, ast.DefElem) and p.defname == "concurrently" for p in stmt.params or ()):
            return "REINDEX CONCURRENTLY"
        if stmt.kind in (ReindexObjectType.REINDEX_OBJECT_DATABASE, ReindexObjectType.REINDEX_OBJECT_SYSTEM):
            return "REINDEX DATABASE" if stmt.kind == ReindexObjectType.REINDEX_OBJECT_DATABASE else "REINDEX SYSTEM"
        return None
    if isinstance(stmt, ast.AlterTableStmt):
        for cmd in stmt.cmds or ():
            if (isinstance(cmd, ast.AlterTableCmd) and cmd.subtype == AlterTableType.AT_DetachPartition
                    and isinstance(cmd.def_, ast.PartitionCmd) and cmd.def_.concurrent):
                return "ALTER TABLE … DETACH PARTITION … CONCURRENTLY"
        return None
    if isinstance(stmt, ast.AlterDatabaseStmt):
        tablespace = any(isinstance(o, ast.DefElem) and o.defname == "tablespace" for o in stmt.options or ())
        return "ALTER DATABASE … SET TABLESPACE" if tablespace else None
    if isinstance(stmt, ast.ClusterStmt):
        return "CLUSTER without a table" if stmt.relation is None else None
    if isinstance(stmt, ast.DiscardStmt):
        return "DISCARD ALL" if stmt.target == DiscardMode.DISCARD_ALL else None
    if isinstance(stmt, ast.CreateSubscriptionStmt):  # creating its replication slot
        return None if _off(stmt.options, "create_slot") or _off(stmt.options, "connect") else "CREATE SUBSCRIPTION"
    if isinstance(stmt, ast.AlterSubscriptionStmt):  # refreshing it (the default when its publications change)
        refresh = stmt.kind == AlterSubscriptionType.ALTER_SUBSCRIPTION_REFRESH or (
            stmt.kind in _PUBLICATION_CHANGES and not _off(stmt.options, "refresh"))
        return "ALTER SUBSCRIPTION … REFRESH PUBLICATION" if refresh else None
    return {
        ast.CreatedbStmt: "CREATE DATABASE", ast.DropdbStmt: "DROP DATABASE", ast.AlterSystemStmt: "ALTER SYSTEM",
        ast.CreateTableSpaceStmt: "CREATE TABLESPACE", ast.DropTableSpaceStmt: "DROP TABLESPACE",
        ast.DropSubscriptionStmt: "DROP SUBSCRIPTION",  # when it has a replication slot, which cannot be told here
    }.get(type(stmt))


def _off(options: Any, name: str) -> bool:
    """Is option ``name`` of a WITH (…) list set to false?"""
    for option in options or ():
        if isinstance(option, ast.DefElem) and option.defname == name:
            value = option.arg
            if isinstance(value, ast.Boolean):
                return not value.boolval
            if isinstance(value, ast.String):
                return (value.sval or "").lower() in ("false", "off", "no", "0")
            if isinstance(value, ast.Integer):
                return value.ival == 0
    return False


class _SetConfigCalls(Visitor):
    """``set_config()`` of one of the timeouts (or of a name that is not written out)."""

    def __init__(self) -> None:
        super().__init__()
        self.problem: str | None = None

    def visit_FuncCall(self, ancestors: Any, node: ast.FuncCall) -> None:
        names = [(p.sval or "").lower() for p in node.funcname or () if isinstance(p, ast.String)]
        if self.problem or not names or names[-1] != "set_config" or names[:-1] not in ([], ["pg_catalog"]):
            return
        first = node.args[0] if node.args else None
        if isinstance(first, ast.A_Const) and isinstance(first.val, ast.String):
            setting = (first.val.sval or "").lower()
            if setting in TIMEOUTS:
                self.problem = f"set_config('{setting}', …) would change a timeout Rollbot sets for the revert: take it out"
            return
        self.problem = ("set_config() of a setting that is not written out might change a timeout Rollbot sets "
                        "for the revert: name the setting")
