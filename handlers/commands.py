"""The `/rollback` grammar: text in, a small command object (or a helpful error) out."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from handlers.config import Policy
from handlers.kind import KindRegistry, Queryable
from handlers.text import escape

# The runbook's kinds not built yet: parsed and validated here, then refused as not available.
PLANNED_USAGE = """\
/rollback db    <env> <migration>        [reason]   revert one migration (reverse SQL), backup first
/rollback db    <env> restore <backup>   [reason]   restore a backup taken by the bot
/rollback db    <env> list                          migrations of the last 24 h and recent backups
/rollback env   <env> <KEY>[ <KEY>…]     [reason]   restore env vars from the last snapshot, redeploy
/rollback flag  <env> <flag-key>         [reason]   disable a feature flag (Edge Config)"""
OTHER_USAGE = """\
/rollback decide                                    decision matrix: issue type + severity -> rollback type
/rollback status | history [n] | resolve [RB-N] | cancel RB-N
/rollback drill <type> <env>                        rehearsal on a non-production environment
/rollback help"""

_PLANNED_WORDS: dict[str, str] = {
    "db": "database",
    "database": "database",
    "env": "env",
    "config": "env",
    "flag": "flag",
    "feature": "flag",
}
_OTHER_WORDS = ("help", "decide", "status", "history", "resolve", "cancel", "drill")
_INCIDENT = re.compile(r"^(?:RB-)?(\d+)$", re.IGNORECASE)
_ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class CommandError(ValueError):
    """Bad command text. ``str(error)`` says what was wrong and what would be right."""


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Rollback:
    kind: str  # a registered kind's name (or a planned one, which is refused)
    env: str
    reason: str
    args: Mapping[str, Any] = field(default_factory=dict)  # the kind's own arguments
    issue: str | None = None  # started from the decision matrix (`/rollback decide`): its row's issue type
    severity: str | None = None  # and the severity chosen there


@dataclass(frozen=True)
class ListMigrations:
    env: str


@dataclass(frozen=True)
class Query:
    """A kind's read-only question (`/rollback env prod list`): answered, nothing started."""

    kind: str
    env: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Decide:
    pass


@dataclass(frozen=True)
class StatusQuery:
    pass


@dataclass(frozen=True)
class History:
    limit: int


@dataclass(frozen=True)
class Resolve:
    incident_id: int | None


@dataclass(frozen=True)
class Cancel:
    incident_id: int


@dataclass(frozen=True)
class Drill:
    """A rehearsal: the whole flow of ``rollback`` on a non-production environment."""

    kind: str
    env: str
    rollback: Rollback | None = None  # None for a kind this Rollbot does not have


Command = Help | Rollback | Query | ListMigrations | Decide | StatusQuery | History | Resolve | Cancel | Drill


def usage(kinds: KindRegistry) -> str:
    """The help text: every registered kind, the planned ones, then the other commands."""
    planned = [line for line in PLANNED_USAGE.splitlines()
               if _PLANNED_WORDS.get(line.split()[1]) not in kinds]
    return "\n".join([*(kind.usage for kind in kinds), *planned, OTHER_USAGE])


def parse(text: str, policy: Policy, kinds: KindRegistry) -> Command:
    """Parse the text after `/rollback`."""
    control = next((c for c in text if _is_control(c)), None)
    if control is not None:
        raise CommandError(f"your command contains a control character (U+{ord(control):04X}), which Rollbot does "
                           "not accept; type it again without it.")
    words = text.split()
    if not words:
        return Help()
    head, rest = words[0].lower(), words[1:]
    kind = kinds.by_word(head)
    if kind is not None:
        if not rest:
            raise CommandError(f"`{head}` needs an environment: `/rollback {head} &lt;env&gt; …`. " + _envs(policy))
        env = _env(rest[0], policy)
        # The word first: a runtime Protocol check costs more than the whole rest of the parse.
        if len(rest) > 1 and rest[1].lower() in getattr(kind, "queries", ()) and isinstance(kind, Queryable):
            return Query(kind.name, env, tuple(word.lower() for word in rest[1:]))
        args, reason = kind.parse(env, rest[1:])
        return Rollback(kind.name, env, reason.strip(), args)
    if head in _PLANNED_WORDS:
        return _planned(_PLANNED_WORDS[head], head, rest, policy)
    if head == "help":
        return Help()
    if head == "decide":
        return Decide()
    if head == "status":
        return StatusQuery()
    if head == "history":
        if not rest:
            return History(limit=10)
        if not rest[0].isdigit() or not 1 <= int(rest[0]) <= 50:
            raise CommandError(f"`history` takes a count from 1 to 50, not `{escape(rest[0])}`. Example: `/rollback history 5`.")
        return History(limit=int(rest[0]))
    if head == "resolve":
        return Resolve(incident_id=_incident(rest[0]) if rest else None)
    if head == "cancel":
        if not rest:
            raise CommandError("`cancel` needs the incident: `/rollback cancel RB-12`.")
        return Cancel(incident_id=_incident(rest[0]))
    if head == "drill":
        named = kinds.by_word(rest[0]) if rest else None
        name = named.name if named else _PLANNED_WORDS.get(rest[0].lower()) if rest else None
        if len(rest) < 2 or name is None:
            raise CommandError("`drill` takes a rollback type and an environment, then what that type needs: "
                               "`/rollback drill code staging`, `/rollback drill flag staging new_checkout`.")
        env = _env(rest[1], policy)
        if named is None:
            return Drill(kind=name, env=env)
        args, reason = named.parse(env, rest[2:])
        return Drill(kind=name, env=env, rollback=Rollback(named.name, env, reason.strip(), args))
    raise CommandError(_unknown(words[0], kinds))


def _planned(kind: str, word: str, rest: list[str], policy: Policy) -> Command:
    if not rest:
        raise CommandError(f"`{word}` needs an environment: `/rollback {word} &lt;env&gt; …`. " + _envs(policy))
    env = _env(rest[0], policy)
    args = rest[1:]
    if kind == "database":
        if not args:
            raise CommandError(
                f"`{word} {env}` needs a migration, `restore &lt;backup&gt;` or `list`. "
                f"Example: `/rollback db {env} 20250130120000_add_orders` or `/rollback db {env} list`."
            )
        if args[0].lower() == "list":
            return ListMigrations(env)
        if args[0].lower() == "restore":
            if len(args) < 2:
                raise CommandError(f"`restore` needs a backup id: `/rollback db {env} restore &lt;backup&gt;`.")
            return Rollback(kind, env, _reason(args[2:]), {"backup": args[1]})
        return Rollback(kind, env, _reason(args[1:]), {"migration": args[0]})
    if kind == "env":
        keys = []
        for token in args:
            if not _ENV_KEY.match(token):
                break
            keys.append(token)
        if not keys:
            raise CommandError(
                f"`{word} {env}` needs at least one variable name in UPPER_CASE: "
                f"`/rollback env {env} API_URL FEATURE_X reason…`."
            )
        return Rollback(kind, env, _reason(args[len(keys):]), {"keys": tuple(keys)})
    if not args:
        raise CommandError(f"`{word} {env}` needs the flag key: `/rollback flag {env} new-checkout reason…`.")
    return Rollback(kind, env, _reason(args[1:]), {"flag": args[0]})


def _is_control(c: str) -> bool:
    return (ord(c) < 32 and c not in "\t\n\r") or 0x7F <= ord(c) < 0xA0


def clean(text: str) -> str:
    """Free text from a modal (a reason, a root cause): control characters removed (Postgres
    refuses NUL), line breaks and tabs kept."""
    return "".join(c for c in text if not _is_control(c))


def _env(word: str, policy: Policy) -> str:
    name = policy.resolve_environment(word)
    if name is None:
        raise CommandError(f"`{escape(word)}` is not a configured environment. " + _envs(policy))
    return name


def _envs(policy: Policy) -> str:
    names = []
    for name, env in policy.environments.items():
        names.append(f"`{name}`" + (f" (also {', '.join(env.aliases)})" if env.aliases else ""))
    return "Environments: " + ", ".join(names) + "."


def _incident(word: str) -> int:
    match = _INCIDENT.match(word)
    if not match:
        raise CommandError(f"`{escape(word)}` is not an incident reference; write it like `RB-12`.")
    return int(match.group(1))


def _reason(words: list[str]) -> str:
    return " ".join(words).strip()


def _unknown(word: str, kinds: KindRegistry) -> str:
    choices = [w for kind in kinds for w in (kind.name, *kind.words)] + list(_PLANNED_WORDS) + list(_OTHER_WORDS)
    close = difflib.get_close_matches(word.lower(), choices, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return (f"`{escape(word)}` is not a /rollback command.{hint} Try `/rollback help`, or:\n"
            f"```{escape(usage(kinds))}```")
