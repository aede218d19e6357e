"""The env kind's plan: which named variables change (as fingerprints, never values), from which
snapshot, and the production deployment rebuilt with them; and how that snapshot is chosen."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from handlers.env_snapshots import EnvSnapshots, EnvVar, Snapshot, SnapshotUnreadable
from handlers.plans import PlanBase
from handlers.services import Refused


class EnvChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    action: Literal["change", "create"]
    env_id: str | None  # the variable now (None: removed since the snapshot, so re-created)
    type: str
    target: tuple[str, ...]
    from_fp: str | None  # fingerprints, never values
    to_fp: str


class EnvPlan(PlanBase):
    kind: Literal["env"] = "env"
    project: str
    snapshot_id: int
    snapshot_at: datetime
    snapshot_named: bool = False  # the requester named it (`from S-12`)
    keys: tuple[str, ...]
    changes: tuple[EnvChange, ...]
    unchanged: tuple[str, ...] = ()  # named keys that already hold the snapshot's value
    since: tuple[str, ...] = ()  # other keys added or removed since the snapshot, left alone (display only)
    deployment: str  # the production deployment rebuilt with the restored values
    project_name: str
    promote: bool = False
    request: str  # made once per request (kept when re-planned): tells its redeploy from any other

    def binding(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"since", "snapshot_at", "revision"})

    @property
    def target(self) -> str:
        return self.project

    @property
    def tag(self) -> str:
        """Carried by the redeploy (in its meta), so an unanswered one, or one sent by an executor
        that died, is found instead of sent again; no other request or revision has it."""
        return f"rollbot-{self.request}-r{self.revision}"

    def builds_on(self, earlier: PlanBase) -> bool:
        return (earlier.serves_after is not None and earlier.serves_after == self.deployment
                and getattr(earlier, "project", None) == self.project)

    @property
    def change(self) -> tuple[str, str]:
        keys = ", ".join(c.key for c in self.changes)
        return f"{keys} as now", f"{keys} as in S-{self.snapshot_id}"


def choose_snapshot(snapshots: EnvSnapshots, project: str, keys: Sequence[str], snapshot_id: int | None, current: Mapping[str, str | None],
                    now_vars: Mapping[str, EnvVar]) -> Snapshot:
    """The named snapshot; else the newest one in which every named key differs from now, else
    the newest in which any does (so a scheduled snapshot taken after a bad change does not hide
    the good value); else the newest."""
    try:
        if snapshot_id is not None:
            named = snapshots.load(snapshot_id)
            if named is None or named.info.project != project:
                raise Refused(f"there is no snapshot `S-{snapshot_id}` of `{project}`; "
                              "`/rollback env <env> list` shows them.")
            return named
        infos = snapshots.snapshots(project, 50)
        if not infos:
            raise Refused(f"there is no env-var snapshot of `{project}` yet, so there is nothing to restore from. "
                          "The worker takes one every `env_snapshot_every`; until then, change the variables in "
                          "Vercel by hand.")
        opened = [snap for snap in (snapshots.load(info.id) for info in infos) if snap is not None]

        def differs(snap: Snapshot, key: str) -> bool:
            old = snap.get(key)
            return old is not None and old.value is not None and (key not in now_vars or old.value != current[key])

        return (next((snap for snap in opened if all(differs(snap, key) for key in keys)), None)
                or next((snap for snap in opened if any(differs(snap, key) for key in keys)), None)
                or opened[0])
    except SnapshotUnreadable as error:
        raise Refused(error.message) from None


def after_earlier(plan: EnvPlan, earlier: Sequence[PlanBase]) -> EnvPlan:
    """An env restore that runs after a code rollback of the same project (``code+env``) rebuilds
    the deployment the code part rolls back to, and promotes it: the instant rollback pinned
    production, and rebuilding the deployment serving at request time would bring the bad code back."""
    for before in reversed(earlier):
        serves = before.serves_after
        if serves and getattr(before, "project", None) == plan.project:
            return plan.model_copy(update={"deployment": serves, "promote": True})
    return plan


def changed_keys(snapshots: EnvSnapshots, project: str, now_vars: Mapping[str, EnvVar],
                 value_of: Callable[[EnvVar], str | None]) -> list[str]:
    """The restorable keys that differ now from the newest snapshot in which any key differs (a
    scheduled snapshot taken after a bad change does not hide it): what an env rollback started
    from the decision matrix proposes. Empty when nothing differs."""
    current = {key: value_of(var) for key, var in now_vars.items()}
    try:
        for info in snapshots.snapshots(project, 20):
            snap = snapshots.load(info.id)
            if snap is None:
                continue
            changed = [v.key for v in snap.vars if v.value is not None and v.key in current
                       and current[v.key] is not None and current[v.key] != v.value]
            if changed:
                return sorted(changed)
    except SnapshotUnreadable as error:
        raise Refused(error.message) from None
    return []
