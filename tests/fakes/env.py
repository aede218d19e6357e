"""Fakes for the env kind: a Vercel project's variables and deployments, and a snapshot store.

``FakeEnv.script`` is consumed by the changes (set, create, redeploy), in order: "ok",
"timeout-applied" (applies, then an uncertain timeout), "timeout-lost" (uncertain, applies
nothing), "429" and "400" (definite refusals). Builds are READY after ``build_polls`` reads.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from handlers.env_redeploy import Production
from handlers.env_snapshots import EnvVar, Snapshot, SnapshotInfo, SnapshotUnreadable, SnapshotVar
from handlers.ports import ProviderError


@dataclass
class FakeVar:
    id: str
    key: str
    value: str
    type: str = "encrypted"
    target: tuple[str, ...] = ("production",)


@dataclass
class FakeBuild:
    uid: str
    source: str
    tag: str
    env: dict[str, str]
    polls: int
    state: str = "BUILDING"


class FakeEnv:
    def __init__(self) -> None:
        self.vars: list[FakeVar] = [
            FakeVar("env_api", "API_URL", "https://api.shop.test/v2"),
            FakeVar("env_recs", "FEATURE_RECS", "on", "plain"),
            FakeVar("env_pay", "PAYMENT_SECRET", "sk_live_123", "sensitive"),
            FakeVar("env_prev", "API_URL", "https://preview.shop.test", target=("preview",)),
        ]
        self.script: list[str] = []
        self.writes: list[tuple[str, str]] = []  # (action, key) of every change sent, applied or not
        self.reads = 0
        self.production_uid: str | None = "dpl_live"
        self.pinned = False
        self.builds: list[FakeBuild] = []
        self.build_polls = 2
        self.fail_build = False
        self.promotes: list[str] = []
        self.unreadable = False
        self._ids = itertools.count(1)

    # -- by hand -----------------------------------------------------------------------------

    def set(self, key: str, value: str) -> None:
        self._var(key).value = value

    def value(self, key: str) -> str | None:
        var = next((v for v in self.vars if v.key == key and "production" in v.target), None)
        return var.value if var else None

    def _var(self, key: str) -> FakeVar:
        return next(v for v in self.vars if v.key == key and "production" in v.target)

    def _step(self, action: str, key: str) -> str:
        self.writes.append((action, key))
        step = self.script.pop(0) if self.script else "ok"
        if step == "429":
            raise ProviderError("Vercel answered 429 rate_limited", status=429, retry_after=1.0)
        if step == "400":
            raise ProviderError("Vercel answered 400 bad_request: no", status=400)
        if step == "timeout-lost":
            raise ProviderError("Vercel did not answer in time", code="timeout", uncertain=True)
        return step

    # -- EnvProvider -------------------------------------------------------------------------

    def env_vars(self, project: str) -> list[EnvVar]:
        if self.unreadable:
            raise ProviderError("Vercel answered 503: maintenance", status=503)
        self.reads += 1
        return [EnvVar(v.id, v.key, v.type, v.target) for v in self.vars]

    def env_value(self, project: str, env_id: str) -> str | None:
        var = next((v for v in self.vars if v.id == env_id), None)
        if var is None:
            raise ProviderError("Vercel answered 404 not_found", status=404)
        return None if var.type == "sensitive" else var.value

    def set_env_value(self, project: str, env_id: str, value: str) -> None:
        var = next(v for v in self.vars if v.id == env_id)
        step = self._step("set", var.key)
        var.value = value
        if step == "timeout-applied":
            raise ProviderError("Vercel did not answer in time", code="timeout", uncertain=True)

    def create_env(self, project: str, key: str, value: str, type: str, target: Sequence[str]) -> None:
        step = self._step("create", key)
        self.vars.append(FakeVar(f"env_new{next(self._ids)}", key, value, type, tuple(target)))
        if step == "timeout-applied":
            raise ProviderError("Vercel did not answer in time", code="timeout", uncertain=True)

    def production(self, project: str) -> Production:
        for build in self.builds:
            self._settle(build)
        return Production("shop", self.production_uid, self.pinned)

    def redeploy(self, name: str, deployment: str, tag: str) -> str:
        step = self._step("redeploy", deployment)
        uid = f"dpl_re{next(self._ids)}"
        prod_env = {v.key: v.value for v in self.vars if "production" in v.target}
        self.builds.append(FakeBuild(uid, deployment, tag, prod_env, self.build_polls))
        if step == "timeout-applied":
            raise ProviderError("Vercel did not answer in time", code="timeout", uncertain=True)
        return uid

    def find_redeploy(self, project: str, tag: str) -> str | None:
        return next((b.uid for b in self.builds if b.tag == tag), None)

    def deployment_state(self, uid: str) -> str:
        build = next(b for b in self.builds if b.uid == uid)
        build.polls -= 1
        self._settle(build)
        return build.state

    def _settle(self, build: FakeBuild) -> None:
        if build.state == "BUILDING" and build.polls <= 0:
            build.state = "ERROR" if self.fail_build else "READY"
            if build.state == "READY" and not self.pinned:
                self.production_uid = build.uid

    def promote(self, project: str, uid: str) -> None:
        self.promotes.append(uid)
        self.production_uid, self.pinned = uid, False


@dataclass
class FakeSnapshots:
    """Snapshots in a dict, values kept as given (the Postgres store seals them; the contract
    tests hold both to the same behaviour). ``key`` None: no usable ROLLBOT_SECRET_KEY."""

    key: bytes | None = b"fake key"
    rows: dict[int, tuple[SnapshotInfo, tuple[SnapshotVar, ...], datetime]] = field(default_factory=dict)
    wrong_key: bool = False

    def unavailable(self) -> str | None:
        return None if self.key else "ROLLBOT_SECRET_KEY is not set; make one with `rollbot secret-key`"

    def save(self, project: str, taken_at: datetime, reason: str, vars: Sequence[SnapshotVar]) -> SnapshotInfo:
        self._usable()
        info = SnapshotInfo(max(self.rows, default=0) + 1, project, taken_at, reason, len(vars),
                            sum(1 for v in vars if v.value is None))
        self.rows[info.id] = (info, tuple(vars), taken_at)
        return info

    def touch(self, snapshot_id: int, at: datetime) -> None:
        info, vars, checked = self.rows[snapshot_id]
        self.rows[snapshot_id] = (info, vars, max(checked, at))

    def last_checked(self, project: str) -> datetime | None:
        return max((checked for info, _, checked in self.rows.values() if info.project == project), default=None)

    def snapshots(self, project: str, limit: int) -> list[SnapshotInfo]:
        return sorted((info for info, _, _ in self.rows.values() if info.project == project),
                      key=lambda i: -i.id)[:limit]

    def load(self, snapshot_id: int) -> Snapshot | None:
        if snapshot_id not in self.rows:
            return None
        self._usable()
        if self.wrong_key:
            raise SnapshotUnreadable(f"snapshot S-{snapshot_id}: ROLLBOT_SECRET_KEY cannot decrypt this snapshot")
        info, vars, _ = self.rows[snapshot_id]
        return Snapshot(info, vars)

    def fingerprint(self, scope: str, value: str) -> str:
        self._usable()
        assert self.key is not None
        return hmac.new(self.key, f"{scope}\0{value}".encode(), hashlib.sha256).hexdigest()[:8]

    def _usable(self) -> None:
        if not self.key:
            raise SnapshotUnreadable("ROLLBOT_SECRET_KEY is not set")


def rename(snapshots: FakeSnapshots, snapshot_id: int, project: str) -> None:
    """Move a snapshot to another project (for a test of a snapshot named from the wrong one)."""
    info, vars, checked = snapshots.rows[snapshot_id]
    snapshots.rows[snapshot_id] = (replace(info, project=project), vars, checked)
