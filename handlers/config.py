"""The policy file (``rollbot.toml``) as validated models.

Loaded by ``bot.config_file``; the core only reads these objects. Every error names the key.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from handlers.durations import parse_duration

RollbackType = Literal["code", "database", "env", "flag"]
ROLLBACK_TYPES: tuple[RollbackType, ...] = ("code", "database", "env", "flag")


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("durations are strings such as '90s', '5m' or '1h'")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleMembers(_Strict):
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _ids(self) -> RoleMembers:
        for user in self.users:
            if not (user[:1] in ("U", "W") and user.isalnum()):
                raise ValueError(f"{user!r} is not a Slack user ID (U… or W…)")
        for group in self.groups:
            if not (group.startswith("S") and group.isalnum()):
                raise ValueError(f"{group!r} is not a Slack user-group ID (S…)")
        return self


class ApprovalRule(_Strict):
    approvers: tuple[str, ...]
    approvals: int = Field(default=1, ge=1, le=10)


DEFAULT_RULE = ApprovalRule(approvers=("lead",))  # a plugin kind with no rule of its own
PART_SEPARATOR = "+"
"""A combined kind is named by its parts: ``code+env`` runs ``code``, then ``env`` (``handlers.combined``)."""


class EnvironmentPolicy(BaseModel):
    """Who may request, and one approval rule per rollback kind. The runbook's four kinds have
    fields; a kind added by a plugin gets its rule as an extra key of the same shape (the
    bootstrap refuses a key that names no registered kind)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, ApprovalRule] = Field(init=False)

    requesters: tuple[str, ...] = ("engineer", "lead")
    self_approval: bool = False
    code: ApprovalRule = ApprovalRule(approvers=("lead",))
    database: ApprovalRule = ApprovalRule(approvers=("dba", "lead"), approvals=2)
    env: ApprovalRule = ApprovalRule(approvers=("lead",))
    flag: ApprovalRule = ApprovalRule(approvers=("engineer", "lead"))

    def rule(self, kind: str) -> ApprovalRule:
        """The approval rule of ``kind``. A combined kind (``code+env``) without a rule of its own
        needs what every part needs: as many approvals as the strictest part, from the roles that
        may approve every part (none in common: ``approvers`` is empty, and nobody can approve)."""
        if kind in ROLLBACK_TYPES:
            rule: ApprovalRule = getattr(self, kind)
            return rule
        extra = self.__pydantic_extra__ or {}
        if kind in extra or PART_SEPARATOR not in kind:
            return extra.get(kind, DEFAULT_RULE)
        parts = [self.rule(part) for part in kind.split(PART_SEPARATOR)]
        common = tuple(role for role in parts[0].approvers if all(role in p.approvers for p in parts[1:]))
        return ApprovalRule.model_construct(approvers=common, approvals=max(p.approvals for p in parts))

    def extra_kinds(self) -> tuple[str, ...]:
        """Kinds named by extra keys (plugins' kinds)."""
        return tuple(self.__pydantic_extra__ or {})


class FlagSpec(_Strict):
    """One feature flag's "disabled" value (`off`); a boolean flag needs none (`false`)."""

    off: Any = None

    @field_validator("off")
    @classmethod
    def _json(cls, value: Any) -> Any:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError("must be a JSON value (true/false, a number, a string, an array or a table); "
                             "dates and NaN are not") from None
        return value

    @property
    def has_off(self) -> bool:
        return "off" in self.model_fields_set


class Environment(_Strict):
    aliases: tuple[str, ...] = ()
    channel: str
    notify: tuple[str, ...] = ()
    vercel_project: str | None = None
    edge_config: str | None = None
    database_url_env: str | None = None
    migrations_dir: str | None = None
    backup_dir: str | None = None
    health_checks: tuple[str, ...] = ()
    monitor: tuple[Duration, ...] = (timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=15))
    approval_timeout: Duration = timedelta(minutes=30)
    production: bool | None = None
    require_checklist: tuple[str, ...] = ()  # pre-rollback items ticked before an approval counts
    env_snapshot_every: Duration | None = None  # env-var snapshots (and env rollbacks) only when set
    backup_retention: Duration = timedelta(days=14)  # database backups older than this are pruned
    lock_timeout: Duration = timedelta(seconds=5)  # a database revert waits this long for a lock, then gives up
    statement_timeout: Duration = timedelta(minutes=5)  # and this long for any one statement
    flags: dict[str, FlagSpec] = Field(default_factory=dict)
    policy: EnvironmentPolicy = EnvironmentPolicy()

    @field_validator("require_checklist")
    @classmethod
    def _checklist(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_checklist_key(name) for name in names))

    @model_validator(mode="after")
    def _checks(self) -> Environment:
        if not (self.channel[:1] in ("C", "G") and self.channel.isalnum()):
            raise ValueError(f"channel {self.channel!r} is not a Slack channel ID (C…)")
        for url in self.health_checks:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"health check {url!r} must be an http(s) URL")
        if self.env_snapshot_every is not None and self.env_snapshot_every < timedelta(minutes=1):
            raise ValueError("env_snapshot_every must be at least '1m' (each snapshot reads every variable)")
        for key in ("lock_timeout", "statement_timeout", "backup_retention"):
            if getattr(self, key) <= timedelta(0):
                raise ValueError(f"{key} must be longer than 0s")
        if list(self.monitor) != sorted(self.monitor):
            raise ValueError("monitor offsets must be in increasing order")
        return self


# Pre-rollback checklist items by the names people use in the policy file (the runbook's wording,
# snake_cased) and by Rollbot's own keys.
RUNBOOK_NAMES = {
    "identify_root_cause": "root_cause", "determine_rollback_type": "type", "notify_team": "notify",
    "backup_current_state": "backup", "document_rollback_steps": "steps", "verify_rollback_target": "known_good",
}


def _checklist_key(name: str) -> str:
    wanted = name.strip().lower()
    key = RUNBOOK_NAMES.get(wanted) or (wanted if wanted in RUNBOOK_NAMES.values() else None)
    if key is None:
        raise ValueError(f"{name!r} is not a pre-rollback checklist item (one of: "
                         f"{', '.join(RUNBOOK_NAMES)})")
    return key


class Scheduler(_Strict):
    tick: Duration = timedelta(seconds=15)


class Drills(_Strict):
    every: Duration = timedelta(days=91)  # a rollback drill this often
    channel: str | None = None
    procedure_reviewed: date | None = None  # when the runbook was last reviewed ("2026-09-01")
    review_every: Duration = timedelta(days=90)
    procedure_url: str | None = None
    remind_every: Duration = timedelta(days=7)  # an overdue drill or review is reminded again this often

    @field_validator("remind_every")
    @classmethod
    def _remind_every(cls, value: timedelta) -> timedelta:
        if value < timedelta(hours=1):
            raise ValueError("must be at least '1h' (each reminder is a message in the channel)")
        return value

    @field_validator("every", "review_every")
    @classmethod
    def _at_least_a_day(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1):
            raise ValueError("must be at least '1d'")
        return value

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[CG][A-Z0-9]{6,}", value):
            raise ValueError(f"{value!r} is not a Slack channel ID (C… or G…, upper-case letters and digits)")
        return value

    @field_validator("procedure_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s<>|]+", value):
            raise ValueError(f"{value!r} must be an http(s) URL without spaces, '<', '>' or '|'")
        return value


class FollowUpPolicy(_Strict):
    every: Duration = timedelta(hours=24)  # an open follow-up's owner is reminded by DM this often

    @field_validator("every")
    @classmethod
    def _not_too_often(cls, value: timedelta) -> timedelta:
        if value < timedelta(hours=1):
            raise ValueError("must be at least 1h: it paces reminders people get by DM")
        return value


class Policy(_Strict):
    """The whole policy file."""

    roles: dict[str, RoleMembers]
    scheduler: Scheduler = Scheduler()
    drills: Drills = Drills()
    follow_ups: FollowUpPolicy = FollowUpPolicy()
    environments: dict[str, Environment]

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        if not self.environments:
            raise ValueError("at least one [environments.<name>] table is needed")
        seen: dict[str, str] = {}
        for name, env in self.environments.items():
            for alias in (name, *env.aliases):
                if alias in seen and seen[alias] != name:
                    raise ValueError(f"environments.{name}.aliases: {alias!r} already names {seen[alias]!r}")
                seen[alias] = name
            roles = [("requesters", r) for r in env.policy.requesters]
            for kind in (*ROLLBACK_TYPES, *env.policy.extra_kinds()):
                roles += [(f"{kind}.approvers", r) for r in env.policy.rule(kind).approvers]
            for where, role in roles:
                if role not in self.roles:
                    raise ValueError(
                        f"environments.{name}.policy.{where}: role {role!r} is not defined in [roles]"
                        f" (defined: {', '.join(sorted(self.roles)) or 'none'})"
                    )
        return self

    def resolve_environment(self, word: str) -> str | None:
        """The canonical environment name for ``word`` (a name or an alias), or None."""
        return self._names.get(word.lower())

    @cached_property
    def _names(self) -> dict[str, str]:
        """Every name and alias, lowercased, to its environment (the first one wins, as before)."""
        names: dict[str, str] = {}
        for name, env in self.environments.items():
            for word in (name, *env.aliases):
                names.setdefault(word.lower(), name)
        return names

    def is_production(self, env_name: str) -> bool:
        env = self.environments[env_name]
        if env.production is not None:
            return env.production
        return env_name.lower() in ("prod", "production") or "production" in env.aliases
