"""Environment-variable snapshots: what the env rollback restores from, since Vercel cannot return
a variable's old value.

The worker takes one per configured project every ``env_snapshot_every`` (only when something
changed; otherwise it records that it looked) and the env kind takes one right before any change
it makes. A snapshot holds the project's production variables, each value read decrypted one by
one; a ``sensitive`` variable cannot be read back, so it is recorded as not restorable. The store
(``EnvSnapshots``) seals snapshots at rest; plaintext values live only in memory, on their way to
or from Vercel. People see a value only as its fingerprint, a short keyed hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from handlers.durations import format_duration
from handlers.ports import ProviderError

SENSITIVE = "sensitive"
PRODUCTION = "production"


@dataclass(frozen=True)
class EnvVar:
    """A project variable as Vercel lists it (no value)."""

    id: str
    key: str
    type: str  # plain | encrypted | sensitive | secret | system
    target: tuple[str, ...]


@dataclass(frozen=True)
class SnapshotVar:
    key: str
    id: str
    type: str
    target: tuple[str, ...]
    value: str | None  # None: sensitive, Vercel never returns it, so it cannot be restored

    @property
    def restorable(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class SnapshotInfo:
    """What may be shown about a snapshot without opening it."""

    id: int
    project: str
    taken_at: datetime
    reason: str  # "scheduled" or "before RB-12"
    variables: int
    unreadable: int

    @property
    def ref(self) -> str:
        return f"S-{self.id}"


@dataclass(frozen=True)
class Snapshot:
    info: SnapshotInfo
    vars: tuple[SnapshotVar, ...]

    def get(self, key: str) -> SnapshotVar | None:
        return next((v for v in self.vars if v.key == key), None)


class SnapshotUnreadable(Exception):
    """A snapshot cannot be opened (``ROLLBOT_SECRET_KEY`` is missing or is not the key it was
    sealed with); ``message`` says how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EnvSnapshots(Protocol):
    """Sealed snapshots of env vars (Postgres + Fernet in production, a dict in the unit tier)."""

    def unavailable(self) -> str | None:
        """Why snapshots cannot be sealed or opened now (no usable key), or None."""

    def save(self, project: str, taken_at: datetime, reason: str, vars: Sequence[SnapshotVar]) -> SnapshotInfo: ...

    def touch(self, snapshot_id: int, at: datetime) -> None:
        """Record that the project was read at ``at`` and still matched this snapshot."""

    def last_checked(self, project: str) -> datetime | None:
        """When the project's variables were last read for a snapshot (taken or matched)."""

    def snapshots(self, project: str, limit: int) -> list[SnapshotInfo]:
        """Newest first."""

    def load(self, snapshot_id: int) -> Snapshot | None:
        """Opened; None when there is no such snapshot. Raises SnapshotUnreadable."""

    def fingerprint(self, scope: str, value: str) -> str:
        """A short keyed hash of ``value`` as the value of ``scope`` ("prj_abc/API_URL"): equal
        values of the same variable match, nothing of the value can be read back, and the same
        value in two variables cannot be linked. Stable across a rotation of the key."""


class EnvReader(Protocol):
    def env_vars(self, project: str) -> list[EnvVar]:
        """Every variable of the project, values left out."""

    def env_value(self, project: str, env_id: str) -> str | None:
        """One value, decrypted; None when Vercel does not return it (``sensitive``, or not
        decrypted). Raises ProviderError (status 404 when the variable is gone)."""


def production_vars(reader: EnvReader, project: str) -> list[EnvVar]:
    """The variables production builds see (what an env rollback restores)."""
    return [v for v in reader.env_vars(project) if PRODUCTION in v.target and v.type != "system"]


def read_snapshot(reader: EnvReader, project: str) -> tuple[SnapshotVar, ...]:
    """The production variables now, each value read decrypted one by one. One Vercel does not
    return is kept as not restorable; one deleted between the listing and its read is left out."""
    taken = []
    for var in sorted(production_vars(reader, project), key=lambda v: (v.key, v.id)):
        try:
            value = None if var.type == SENSITIVE else reader.env_value(project, var.id)
        except ProviderError as error:
            if error.status == 404:
                continue
            raise
        taken.append(SnapshotVar(var.key, var.id, var.type, var.target, value))
    return tuple(taken)


def take(reader: EnvReader, store: EnvSnapshots, project: str, at: datetime, reason: str, *,
         always: bool = False) -> tuple[SnapshotInfo, bool]:
    """Read the project's variables and keep them: a new snapshot when they differ from the last
    one (or ``always``), else the last one marked as checked. Returns (snapshot, new)."""
    now = read_snapshot(reader, project)
    if not always:
        latest = store.snapshots(project, 1)
        if latest:
            last = store.load(latest[0].id)
            if last is not None and last.vars == now:
                store.touch(last.info.id, at)
                return last.info, False
    return store.save(project, at, reason, now), True


def snapshot_due(store: EnvSnapshots, project: str, every: float, now: datetime) -> bool:
    checked = store.last_checked(project)
    return checked is None or (now - checked).total_seconds() >= every


def differences(older: Sequence[SnapshotVar], newer: Sequence[SnapshotVar]) -> list[str]:
    """What changed between two snapshots, by key: "API_URL changed", "X added", "Y removed"."""
    before = {v.key: v for v in older}
    after = {v.key: v for v in newer}
    changes = [f"{key} added" for key in after if key not in before]
    changes += [f"{key} removed" for key in before if key not in after]
    changes += [f"{key} changed" for key in after
                if key in before and (after[key].value, after[key].type) != (before[key].value, before[key].type)]
    return sorted(changes)


LIST_LIMIT = 10


def listing(store: EnvSnapshots, project: str, env_name: str, now: datetime) -> str:
    """`/rollback env <env> list`: the newest snapshots and what each changed since the one before
    it, by key (values never appear)."""
    infos = store.snapshots(project, LIST_LIMIT + 1)
    if not infos:
        return (f"No env-var snapshot of `{project}` ({env_name}) yet. The worker takes one within "
                "`env_snapshot_every` of starting, and one before every env rollback.")
    shown = infos[:LIST_LIMIT]
    lines = [f"*Env-var snapshots of `{project}` ({env_name})*, newest first:"]
    opened = {info.id: store.load(info.id) for info in infos}
    for n, info in enumerate(shown):
        snap = opened[info.id]
        older = opened.get(infos[n + 1].id) if n + 1 < len(infos) else None
        if snap is None:
            continue
        changed = differences(older.vars, snap.vars) if older is not None else []
        what = ("; " + ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
                ) if changed else ("; first snapshot" if older is None and n + 1 >= len(infos) else "")
        lost = f", {info.unreadable} sensitive (not restorable)" if info.unreadable else ""
        lines.append(f"• `{info.ref}` {format_duration(now - info.taken_at)} ago ({info.reason}): "
                     f"{info.variables} variables{lost}{what}")
    if len(infos) > LIST_LIMIT:
        lines.append(f"Older snapshots are kept too; name one with `/rollback env {env_name} KEY from S-<id>`.")
    lines.append(f"Restore with `/rollback env {env_name} KEY… [from S-<id>] [reason]` (the newest snapshot that "
                 "differs from now, unless one is named).")
    return "\n".join(lines)
