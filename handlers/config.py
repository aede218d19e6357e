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
    # Each field's docstring is its description in docs/configuration.md (bot.config_reference).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class RoleMembers(_Strict):
    """A role: who holds it, by Slack user ID and by user group."""

    users: tuple[str, ...] = ()
    """Slack user IDs (U… or W…) that hold the role."""
    groups: tuple[str, ...] = ()
    """Slack user-group IDs (S…): every member holds the role (looked up with usergroups:read, cached)."""

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
    """Who approves one kind of rollback on an environment, and how many of them."""

    approvers: tuple[str, ...]
    """Roles (from [roles]) whose members' approvals count."""
    approvals: int = Field(default=1, ge=1, le=10)
    """Distinct approvers needed (1 to 10); the requester never counts unless `self_approval`."""


DEFAULT_RULE = ApprovalRule(approvers=("lead",))  # a plugin kind with no rule of its own
PART_SEPARATOR = "+"
"""A combined kind is named by its parts: ``code+env`` runs ``code``, then ``env`` (``handlers.combined``)."""


class EnvironmentPolicy(BaseModel):
    """Who may request, and one approval rule per rollback kind. The runbook's four kinds have
    fields; a kind added by a plugin gets its rule as an extra key of the same shape (the
    bootstrap refuses a key that names no registered kind)."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)
    __pydantic_extra__: dict[str, ApprovalRule] = Field(init=False)

    requesters: tuple[str, ...] = ("engineer", "lead")
    """Roles whose members may request a rollback here."""
    self_approval: bool = False
    """Whether a requester's own approval counts (four eyes when false)."""
    code: ApprovalRule = ApprovalRule(approvers=("lead",))
    """The approval rule of code rollbacks (Vercel deployments)."""
    database: ApprovalRule = ApprovalRule(approvers=("dba", "lead"), approvals=2)
    """The approval rule of database rollbacks (reverse migrations, restores)."""
    env: ApprovalRule = ApprovalRule(approvers=("lead",))
    """The approval rule of env-var rollbacks."""
    flag: ApprovalRule = ApprovalRule(approvers=("engineer", "lead"))
    """The approval rule of feature-flag rollbacks."""

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
    """The value that turns the flag off (any JSON value); a boolean flag's is `false`."""

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
    """One environment Rollbot rolls back: where, with what, and under which policy."""

    aliases: tuple[str, ...] = ()
    """Other names for the environment in commands (`/rollback code production`)."""
    channel: str
    """The channel ID (C… or G…) where its incident threads start."""
    notify: tuple[str, ...] = ()
    """Who the "notify team" step mentions: user-group (S…) or user (U…) IDs."""
    vercel_project: str | None = None
    """The Vercel project ID (prj_…) of code and env-var rollbacks."""
    edge_config: str | None = None
    """The Edge Config (Global Config) ID (ecfg_…) holding its feature flags."""
    database_url_env: str | None = None
    """The name of the variable that holds the target database's URL (never the bot's own database)."""
    migrations_dir: str | None = None
    """The Supabase migrations folder, with `<version>_<name>.down.sql` (or a `-- rollback` section) beside each."""
    backup_dir: str | None = None
    """Where `pg_dump -Fc` backups are written (mode 0600) before a database rollback."""
    health_checks: tuple[str, ...] = ()
    """URLs that must answer 2xx when verifying a rollback and at each monitoring reminder."""
    monitor: tuple[Duration, ...] = (timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=15))
    """Offsets after a rollback at which the worker posts a reminder with fresh health checks (increasing)."""
    approval_timeout: Duration = timedelta(minutes=30)
    """How long a request waits for its approvals before it expires."""
    production: bool | None = None
    """Whether drills are refused here; when unset, true for environments named or aliased prod/production."""
    require_checklist: tuple[str, ...] = ()
    """Pre-rollback checklist items (the runbook's wording, snake_cased) that must be ticked before an approval counts."""
    env_snapshot_every: Duration | None = None
    """How often the production env vars are snapshotted (encrypted); unset, env rollbacks are off here. At least 1m."""
    backup_retention: Duration = timedelta(days=14)
    """Database backups older than this are pruned (never the only one of an open incident)."""
    lock_timeout: Duration = timedelta(seconds=5)
    """How long a database revert waits for a lock before it gives up, changing nothing."""
    statement_timeout: Duration = timedelta(minutes=5)
    """How long any one statement of a database revert may run."""
    flags: dict[str, FlagSpec] = Field(default_factory=dict)
    """The feature flags in `edge_config`, by key: `{ off = <value> }` each (a boolean flag needs no entry)."""
    policy: EnvironmentPolicy = EnvironmentPolicy()
    """Who may request and approve each kind of rollback here."""

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
    """The worker's pace."""

    tick: Duration = timedelta(seconds=15)
    """How often the worker looks for due work it was not woken for (it is woken at once by NOTIFY)."""


class Drills(_Strict):
    """The runbook's quarterly drill and the procedure's review date."""

    every: Duration = timedelta(days=91)
    """A rollback drill (`/rollback drill <type> <env>` on a non-production environment) is due this often; at least 1d."""
    channel: str | None = None
    """Where the worker posts the drill and review reminders (none without it)."""
    procedure_reviewed: date | None = None
    """When the runbook was last reviewed (a TOML date); the next review is due `review_every` later."""
    review_every: Duration = timedelta(days=90)
    """How often the rollback procedure is reviewed; at least 1d."""
    procedure_url: str | None = None
    """The runbook's address, linked from reminders, status and App Home."""
    remind_every: Duration = timedelta(days=7)
    """An overdue drill or review is reminded again this often; at least 1h."""

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
    """The follow-ups recorded when an incident is resolved."""

    every: Duration = timedelta(hours=24)
    """An open follow-up's owner is reminded by DM this often until it is marked done; at least 1h."""

    @field_validator("every")
    @classmethod
    def _not_too_often(cls, value: timedelta) -> timedelta:
        if value < timedelta(hours=1):
            raise ValueError("must be at least 1h: it paces reminders people get by DM")
        return value


class Policy(_Strict):
    """The whole policy file."""

    roles: dict[str, RoleMembers]
    """The roles, by name: `engineer = { users = [...], groups = [...] }`."""
    scheduler: Scheduler = Scheduler()
    """The worker's pace."""
    drills: Drills = Drills()
    """Drill and review reminders."""
    follow_ups: FollowUpPolicy = FollowUpPolicy()
    """Follow-up reminders."""
    environments: dict[str, Environment]
    """The environments, by name; at least one."""

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
