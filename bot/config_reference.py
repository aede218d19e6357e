"""docs/configuration.md, written from the models that validate the configuration (never by hand).

Every environment variable (``bot.settings.Settings``) and every key of the policy file
(``handlers.config.Policy``, walked table by table) gets a row: its type and default read from the
model, its meaning from the field's docstring, and an example from `.env.example` or
`rollbot.example.toml`, the files people copy. A key with no docstring or no example fails:

    python -m bot.config_reference            # write docs/configuration.md
    python -m bot.config_reference --check    # fail when it differs from what the models say
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import tomllib
import types
import typing
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from bot.settings import Settings
from handlers.config import (
    ApprovalRule,
    Drills,
    Environment,
    EnvironmentPolicy,
    FlagSpec,
    FollowUpPolicy,
    RoleMembers,
    Scheduler,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / ".env.example"
TOML_EXAMPLE = ROOT / "rollbot.example.toml"
EXTRA_ENV = {  # read by the process, not by Settings
    "WEB_CONCURRENCY": ("integer", "2", "gunicorn worker processes of `rollbot web`."),
}


class Undocumented(Exception):
    """A key without a docstring or an example."""


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    example: str
    meaning: str


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return "duration" if args[0] is timedelta else _type(args[0])
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type(a) for a in args if a is not type(None))
    if origin is tuple:
        return f"list of {_type(args[0])}s"
    if origin is dict:
        return "table"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", date: "date", timedelta: "duration",
             Path: "path", SecretStr: "secret string"}
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return "any JSON value"


def _value(value: Any) -> str:
    if isinstance(value, timedelta):
        return json.dumps(_duration(value))
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):  # a TOML inline table
        pairs = [f"{k if re.fullmatch(r'[A-Za-z0-9_-]+', k) else json.dumps(k)} = {_value(v)}" for k, v in value.items()]
        return "{ " + ", ".join(pairs) + " }" if pairs else "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    return "unset" if value is None else f"`{_value(value)}`"


def _meaning(where: str, field: FieldInfo) -> str:
    if not field.description:
        raise Undocumented(f"{where} has no docstring: say what it means under the field")
    return " ".join(field.description.split())


# -- environment variables ------------------------------------------------------------------------

def env_examples() -> dict[str, str]:
    """``NAME=value`` lines of .env.example, commented out or not."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"#?\s*([A-Z][A-Z0-9_]*)=(\S*)", line)
        if match:
            found.setdefault(match.group(1), match.group(2))
    return found


def env_rows() -> list[Row]:
    examples = env_examples()
    rows = []
    for name, field in Settings.model_fields.items():
        variable = name.upper()
        if variable not in examples:
            raise Undocumented(f"{variable} is not in .env.example: add an example line")
        default = "unset" if field.default is None else _default(field)
        rows.append(Row(variable, _type(field.annotation), default, f"`{examples[variable] or '(empty)'}`",
                        _meaning(variable, field)))
    for variable, (kind, default, meaning) in EXTRA_ENV.items():
        if variable not in examples:
            raise Undocumented(f"{variable} is not in .env.example: add an example line")
        rows.append(Row(variable, kind, f"`{default}`", f"`{examples[variable]}`", meaning))
    return rows


# -- the policy file ----------------------------------------------------------------------------

# (table, its model, where rollbot.example.toml shows one): every table of handlers.config.Policy.
TABLES: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("roles.<role>", RoleMembers, "roles.engineer"),
    ("scheduler", Scheduler, "scheduler"),
    ("environments.<env>", Environment, "environments.prod"),
    ("environments.<env>.flags.<flag>", FlagSpec, "environments.prod.flags.new_checkout"),
    ("environments.<env>.policy", EnvironmentPolicy, "environments.prod.policy"),
    ("environments.<env>.policy.<kind>", ApprovalRule, "environments.prod.policy.code"),
    ("drills", Drills, "drills"),
    ("follow_ups", FollowUpPolicy, "follow_ups"),
)


def _at(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def policy_rows() -> dict[str, list[Row]]:
    example = tomllib.loads(TOML_EXAMPLE.read_text())
    tables: dict[str, list[Row]] = {}
    for table, model, example_at in TABLES:
        rows = []
        for name, field in model.model_fields.items():
            key = f"{table}.{name}"
            below = next((t for t, _, _ in TABLES if t.startswith(key + ".") or t == key), None)
            if below is not None:  # a table of its own, documented below
                rows.append(Row(name, "table", f"see `[{below}]`", f"see `[{below}]`", _meaning(key, field)))
                continue
            try:
                shown = _at(example, f"{example_at}.{name}")
            except KeyError:
                raise Undocumented(f"{key} has no example in rollbot.example.toml (looked at {example_at}.{name})") \
                    from None
            rows.append(Row(name, _type(field.annotation), _default(field), f"`{_value(shown)}`",
                            _meaning(key, field)))
        tables[table] = rows
    return tables


# -- the page -------------------------------------------------------------------------------------

HEADER = """# Configuration reference

Written by `python -m bot.config_reference` from the models that validate the configuration
(`bot/settings.py`, `handlers/config.py`): types and defaults are the models', meanings their
fields' docstrings, examples from `.env.example` and `rollbot.example.toml`. A test fails when a key
has no meaning or no example, or when this page differs from what the models say.

Durations are strings: `"90s"`, `"5m"`, `"1h"`, `"14d"`. `rollbot check-config` validates both
the environment and the policy file and names the key of any error.
"""


def _table(rows: list[Row], first: str) -> list[str]:
    out = [f"| {first} | type | default | example | meaning |", "|---|---|---|---|---|"]
    for row in rows:
        cells = (f"`{row.key}`", row.type, row.default, row.example, row.meaning)
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return out


def render() -> str:
    out = [HEADER, "## Environment variables", "",
           "Read from the process environment, or from `.env` in the working directory. Secrets are never "
           "logged.", ""]
    out += _table(env_rows(), "variable")
    out += ["", "## The policy file (`rollbot.toml`, or `ROLLBOT_CONFIG`)", ""]
    for table, rows in policy_rows().items():
        out += [f"### `[{table}]`", ""]
        if table == "environments.<env>.policy.<kind>":
            out += ["`<kind>` is `code`, `database`, `env`, `flag`, a combined kind such as `\"code+env\"`, or a "
                    "kind added with `ROLLBOT_KINDS`.", ""]
        out += _table(rows, "key") + [""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.config_reference", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/configuration.md is out of date")
    args = parser.parse_args(argv)
    try:
        page = render()
    except Undocumented as error:
        print(f"undocumented: {error}", file=sys.stderr)
        return 1
    if args.check:
        current = DOC.read_text() if DOC.exists() else ""
        if current != page:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), page.splitlines(True),
                                                       "docs/configuration.md", "what the models say"))
            print("docs/configuration.md is out of date: run `python -m bot.config_reference`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(page)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
