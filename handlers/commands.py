"""The `/rollback` grammar: text in, a small command object (or a helpful error) out."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from handlers.config import Policy, RollbackType
from handlers.text import escape

USAGE = """\
/rollback code  <env> [dpl_…]            [reason]   roll Vercel back to the last known good (or given) deployment
/rollback db    <env> <migration>        [reason]   revert one migration (reverse SQL), backup first
/rollback db    <env> restore <backup>   [reason]   restore a backup taken by the bot
/rollback db    <env> list                          migrations of the last 24 h and recent backups
/rollback env   <env> <KEY>[ <KEY>…]     [reason]   restore env vars from the last snapshot, redeploy
/rollback flag  <env> <flag-key>         [reason]   disable a feature flag (Edge Config)
/rollback decide                                    decision matrix: issue type + severity -> rollback type
/rollback status | history [n] | resolve [RB-N] | cancel RB-N
/rollback drill <type> <env>                        rehearsal on a non-production environment
/rollback help"""

_TYPE_WORDS: dict[str, RollbackType] = {
    "code": "code",
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
    kind: RollbackType
    env: str
    reason: str
    deployment: str | None = None  # code: explicit target
    migration: str | None = None  # database: migration to revert
    backup: str | None = None  # database: backup to restore
    keys: tuple[str, ...] = ()  # env: variables to restore
    flag: str | None = None  # flag: key to disable


@dataclass(frozen=True)
class ListMigrations:
    env: str


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
    kind: RollbackType
    env: str


Command = Help | Rollback | ListMigrations | Decide | StatusQuery | History | Resolve | Cancel | Drill


def parse(text: str, policy: Policy) -> Command:
    """Parse the text after `/rollback`."""
    words = text.split()
    if not words:
        return Help()
    head, rest = words[0].lower(), words[1:]
    if head in _TYPE_WORDS:
        return _rollback(_TYPE_WORDS[head], head, rest, policy)
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
        if len(rest) < 2 or rest[0].lower() not in _TYPE_WORDS:
            raise CommandError("`drill` takes a rollback type and an environment: `/rollback drill code staging`.")
        return Drill(kind=_TYPE_WORDS[rest[0].lower()], env=_env(rest[1], policy))
    raise CommandError(_unknown(words[0]))


def _rollback(kind: RollbackType, word: str, rest: list[str], policy: Policy) -> Command:
    if not rest:
        raise CommandError(f"`{word}` needs an environment: `/rollback {word} &lt;env&gt; …`. " + _envs(policy))
    env = _env(rest[0], policy)
    args = rest[1:]
    if kind == "code":
        if args and args[0].startswith("dpl_"):
            return Rollback(kind, env, _reason(args[1:]), deployment=args[0])
        return Rollback(kind, env, _reason(args))
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
            return Rollback(kind, env, _reason(args[2:]), backup=args[1])
        return Rollback(kind, env, _reason(args[1:]), migration=args[0])
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
        return Rollback(kind, env, _reason(args[len(keys):]), keys=tuple(keys))
    if not args:
        raise CommandError(f"`{word} {env}` needs the flag key: `/rollback flag {env} new-checkout reason…`.")
    return Rollback(kind, env, _reason(args[1:]), flag=args[0])


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


def _unknown(word: str) -> str:
    choices = list(_TYPE_WORDS) + list(_OTHER_WORDS)
    close = difflib.get_close_matches(word.lower(), choices, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return f"`{escape(word)}` is not a /rollback command.{hint} Try `/rollback help`, or:\n```{escape(USAGE)}```"
