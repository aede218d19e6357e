"""What a migration's SQL does to the schema, read with PostgreSQL's own parser (``pglast``).

For the database kind's safety checks: which objects a migration creates and which it alters
(so a later migration that touches any of them blocks reverting it), what a later migration
touches, and what the schema must look like once a migration is reverted. Object names share one
namespace, ``schema.name`` (unqualified names are ``public``): a clash between a table and a type
of the same name counts as a dependency, which errs on the side of refusing. Whatever cannot be
read for sure (a statement the parser rejects, a kind of statement not known here) is reported as
doubt, and doubt refuses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ObjectType
from pglast.parser import ParseError
from pglast.visitors import Visitor

from handlers.db_effects import Effects, Expectation

HARMLESS = (ast.VariableSetStmt, ast.TransactionStmt, ast.SelectStmt, ast.NotifyStmt)
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$")


def qualify(schema: str | None, name: str | None) -> str:
    return f"{schema or 'public'}.{name or ''}".lower()


def _names(parts: Sequence[Any] | None) -> str | None:
    """A qualified name from a list of String nodes (``schema``, ``name``)."""
    strings = [p.sval for p in parts or () if isinstance(p, ast.String)]
    if not strings:
        return None
    return qualify(strings[-2] if len(strings) > 1 else None, strings[-1])


def _rv(node: Any) -> str | None:
    return qualify(node.schemaname, node.relname) if isinstance(node, ast.RangeVar) else None


def _object(node: Any, objtype: Any = None) -> str | None:
    """The object a DROP, COMMENT, GRANT or ALTER names, whatever node holds it."""
    if isinstance(node, ast.RangeVar):
        return _rv(node)
    if isinstance(node, ast.TypeName):
        return _names(node.names)
    if isinstance(node, ast.ObjectWithArgs):
        return _names(node.objname)
    if isinstance(node, ast.String):
        return qualify(None, node.sval)
    if isinstance(node, (tuple, list)):
        parts = list(node)
        if objtype in (ObjectType.OBJECT_COLUMN,) and len(parts) >= 2:
            parts = parts[:-1]  # table.column: the table
        return _names(parts)
    return None


class _References(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: set[str] = set()

    def visit_RangeVar(self, ancestors: Any, node: ast.RangeVar) -> None:
        name = _rv(node)
        if name:
            self.found.add(name)

    def visit_TypeName(self, ancestors: Any, node: ast.TypeName) -> None:
        parts = [p.sval for p in node.names or () if isinstance(p, ast.String)]
        if parts and parts[0] != "pg_catalog":
            name = _names(node.names)
            if name:
                self.found.add(name)

    def visit_FuncCall(self, ancestors: Any, node: ast.FuncCall) -> None:
        name = _names(node.funcname)
        if name and not name.startswith("pg_catalog."):
            self.found.add(name)

    def visit_A_Const(self, ancestors: Any, node: ast.A_Const) -> None:
        """A string that names an object (``nextval('orders_id_seq')``, ``'orders'::regclass``)."""
        value = node.val.sval if isinstance(node.val, ast.String) else None
        if value and IDENTIFIER.match(value.lower()):
            schema, _, name = value.lower().rpartition(".")
            self.found.add(qualify(schema or None, name))


def effects(sql: str) -> Effects:
    """What ``sql`` (one or more statements) does. A parse error is a doubt, not an exception."""
    out = Effects()
    try:
        statements = parse_sql(sql)
    except ParseError as error:
        out.doubts.append(f"PostgreSQL's parser cannot read it ({error})")
        return out
    for raw in statements:
        _statement(raw.stmt, out)
    refs = _References()
    refs(statements)
    out.referenced |= refs.found
    return out


def _statement(stmt: Any, out: Effects) -> None:  # noqa: C901 - one branch per kind of statement
    created, altered = out.created, out.altered
    before = set(created)
    if isinstance(stmt, ast.CreateStmt):
        created.add(_rv(stmt.relation) or "")
    elif isinstance(stmt, ast.CreateTableAsStmt):
        created.add(_rv(stmt.into.rel if stmt.into else None) or "")
    elif isinstance(stmt, ast.ViewStmt):
        created.add(_rv(stmt.view) or "")
    elif isinstance(stmt, ast.CreateSeqStmt):
        created.add(_rv(stmt.sequence) or "")
    elif isinstance(stmt, ast.CompositeTypeStmt):
        created.add(_rv(stmt.typevar) or "")
    elif isinstance(stmt, (ast.CreateEnumStmt,)):
        created.add(_names(stmt.typeName) or "")
    elif isinstance(stmt, ast.CreateDomainStmt):
        created.add(_names(stmt.domainname) or "")
    elif isinstance(stmt, ast.CreateFunctionStmt):
        created.add(_names(stmt.funcname) or "")
        out.bodies += [_body(o.arg) for o in stmt.options or () if o.defname == "as"]
    elif isinstance(stmt, ast.CreateSchemaStmt):
        created.add(str(stmt.schemaname).lower())  # a schema: no dot (what is in it is touched by it)
    elif isinstance(stmt, ast.IndexStmt):
        if stmt.idxname and stmt.relation is not None:
            created.add(qualify(stmt.relation.schemaname, stmt.idxname))
        altered.add(_rv(stmt.relation) or "")
    elif isinstance(stmt, ast.AlterTableStmt):
        table = _rv(stmt.relation) or ""
        altered.add(table)
        for cmd in stmt.cmds or ():
            if cmd.subtype == AlterTableType.AT_AddColumn and cmd.def_ is not None:
                out.expectations.append(Expectation("no column", table, cmd.def_.colname))
            elif cmd.subtype == AlterTableType.AT_DropColumn and cmd.name:
                out.expectations.append(Expectation("column", table, cmd.name))
    elif isinstance(stmt, (ast.CreateTrigStmt,)):
        altered.add(_rv(stmt.relation) or "")
    elif isinstance(stmt, ast.CreatePolicyStmt):
        altered.add(_rv(stmt.table) or "")
    elif isinstance(stmt, ast.AlterEnumStmt):
        altered.add(_names(stmt.typeName) or "")
    elif isinstance(stmt, ast.RenameStmt):
        old = _rv(stmt.relation) or _object(stmt.object, stmt.renameType) or ""
        altered.add(old)
        if stmt.newname and old and stmt.renameType not in (ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABCONSTRAINT):
            altered.add(qualify(old.rpartition(".")[0], stmt.newname))  # what it is called now is its too
    elif isinstance(stmt, ast.DropStmt):
        altered.update(_object(o, stmt.removeType) or "" for o in stmt.objects or ())
    elif isinstance(stmt, ast.CommentStmt):
        altered.add(_object(stmt.object, stmt.objtype) or "")
    elif isinstance(stmt, ast.GrantStmt):
        altered.update(_object(o, stmt.objtype) or "" for o in stmt.objects or ())
    elif isinstance(stmt, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)):
        altered.add(_rv(stmt.relation) or "")
    elif isinstance(stmt, ast.AlterOwnerStmt):
        altered.add(_rv(stmt.relation) or _object(stmt.object, stmt.objectType) or "")
    elif isinstance(stmt, ast.DoStmt):
        out.bodies += [_body(o.arg) for o in stmt.args or () if o.defname == "as"]
        out.doubts.append("a DO block (what it changes cannot be read)")
    elif isinstance(stmt, ast.VariableSetStmt) and (stmt.name or "").lower() == "search_path":
        out.doubts.append("it sets search_path (which schema its names are in cannot be told)")
    elif not isinstance(stmt, HARMLESS):
        out.doubts.append(f"a {type(stmt).__name__} statement (not one Rollbot can follow)")
    created.discard("")
    altered.discard("")
    if getattr(stmt, "if_not_exists", False) or getattr(stmt, "replace", False):
        out.maybe_existed |= created - before  # reverting it may rightly leave the object there


def _body(arg: Any) -> str:
    if isinstance(arg, (tuple, list)):
        return " ".join(_body(a) for a in arg)
    return str(arg.sval) if isinstance(arg, ast.String) else str(arg or "")


def reverted(forward: Effects) -> list[Expectation]:
    """The schema after reverting a migration: what it created is gone, columns it added are gone
    and columns it dropped are back (on tables it did not create)."""
    facts = [Expectation("absent", name) for name in sorted(forward.created - forward.maybe_existed) if "." in name]
    facts += [e for e in forward.expectations if e.target not in forward.created]
    return facts


def parses(sql: str) -> str | None:
    """Why ``sql`` cannot be run as reverse SQL (a parse error, or transaction control of its
    own, which would end Rollbot's one transaction part-way), or None."""
    try:
        statements = parse_sql(sql)
    except ParseError as error:
        return str(error)
    if any(isinstance(raw.stmt, ast.TransactionStmt) for raw in statements):
        return ("it has BEGIN/COMMIT/ROLLBACK of its own, which would end Rollbot's single transaction part-way; "
                "remove them (Rollbot wraps it in one transaction)")
    return None
