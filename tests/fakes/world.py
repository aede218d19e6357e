"""The core wired on fakes: services as the bootstrap builds them, with no server anywhere."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config_file import parse_policy
from handlers.code import CodeKind
from handlers.combined import register_combined
from handlers.commands import Rollback
from handlers.db import DatabaseKind
from handlers.env import EnvKind
from handlers.flag import FlagKind
from handlers.kind import KindRegistry
from handlers.model import Incident
from handlers.requests import request_rollback
from handlers.services import Services
from tests.fakes.db import FakeBackups, FakeSource, FakeTarget
from tests.fakes.env import FakeEnv, FakeSnapshots
from tests.fakes.ports import FakeClock, FakeDirectory, FakeFlags, FakeHealth, FakeLive, FakeNotifier, FakeVercel
from tests.fakes.store import FakeStore
from tests.kinds.switch import SwitchKind

ALICE, BOB, CAROL, DAN, EVE = "U01ALICE", "U01BOB", "U01CAROL", "U01DAN", "U01EVE"
LEADS = [f"U02LEAD{n}" for n in range(1, 6)]


class FakeTime:
    """``sleep`` and ``monotonic`` for a kind's waits: sleeping moves time on, instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def policy_data(*, approvals: int = 1, self_approval: bool = False, switch_approvals: int = 1,
                require: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "roles": {"engineer": {"users": [ALICE, BOB]}, "lead": {"users": [CAROL], "groups": ["S01LEADS"]},
                  "dba": {"users": [DAN]}},
        "environments": {
            "prod": {"channel": "C01INCIDENTS", "notify": ["S01ONCALL"], "vercel_project": "prj",
                     "edge_config": "ecfg_test", "flags": {"promo_banner": {"off": ""}}, "env_snapshot_every": "1h",
                     "database_url_env": "PROD_DATABASE_URL", "migrations_dir": "supabase/migrations",
                     "backup_dir": "/var/backups/rollbot", "lock_timeout": "2s", "statement_timeout": "1m",
                     "health_checks": ["https://shop.test/health"], "monitor": ["5m", "10m", "15m"],
                     "approval_timeout": "30m", "require_checklist": list(require),
                     "policy": {"requesters": ["engineer", "lead"], "self_approval": self_approval,
                                "code": {"approvers": ["lead"], "approvals": approvals},
                                "flag": {"approvers": ["lead"], "approvals": approvals},
                                "env": {"approvers": ["lead"], "approvals": approvals},
                                "switch": {"approvers": ["lead"], "approvals": switch_approvals}}},
            "staging": {"channel": "C02STAGING", "policy": {"requesters": ["engineer"]}},
        },
    }


@dataclass
class FakeWorld:
    svc: Services
    store: FakeStore
    clock: FakeClock
    notifier: FakeNotifier
    vercel: FakeVercel
    flags: FakeFlags
    directory: FakeDirectory
    health: FakeHealth
    time: FakeTime
    switches: Path
    env: FakeEnv
    snapshots: FakeSnapshots
    target: FakeTarget
    source: FakeSource
    backups: FakeBackups

    def request(self, user: str = ALICE, kind: str = "code", reason: str = "checkout 500",
                **args: Any) -> Incident:
        return request_rollback(self.svc, user, Rollback(kind, "prod", reason, args))


def fake_world(tmp_path: Path, *, approvals: int = 1, self_approval: bool = False,
               uncertain_window: float = 30.0, require: tuple[str, ...] = ()) -> FakeWorld:
    clock, time = FakeClock(), FakeTime()
    store, notifier, vercel, flags = FakeStore(clock), FakeNotifier(), FakeVercel(), FakeFlags()
    directory = FakeDirectory({"S01LEADS": frozenset(LEADS)})
    health = FakeHealth()
    env, snapshots = FakeEnv(), FakeSnapshots()
    target, source = FakeTarget(), FakeSource()
    backups = FakeBackups(target, clock=clock.now)
    switches = tmp_path / "switches"
    switches.mkdir(exist_ok=True)
    (switches / "checkout").write_text("on")
    kinds = KindRegistry([CodeKind(vercel, uncertain_window=uncertain_window, sleep=time.sleep,
                                   rolled_back=store.rolled_back_plans,
                                   monotonic=time.monotonic), SwitchKind(switches),
                          FlagKind(flags, uncertain_window=uncertain_window, sleep=time.sleep, monotonic=time.monotonic),
                          EnvKind(env, snapshots, clock.now, uncertain_window=uncertain_window, sleep=time.sleep,
                                  monotonic=time.monotonic),
                          DatabaseKind(target, source, backups, clock.now,
                                       lambda: [(i.id, i.plan) for i in store.open_incidents()],
                                       monotonic=time.monotonic)])
    register_combined(kinds)  # code+env, as the bootstrap does
    notifier.ledger = store
    policy = parse_policy(policy_data(approvals=approvals, self_approval=self_approval, switch_approvals=approvals,
                                      require=require))
    svc = Services(policy=policy, store=store, live=FakeLive(), notifier=notifier, kinds=kinds, health=health,
                   directory=directory, clock=clock)
    return FakeWorld(svc, store, clock, notifier, vercel, flags, directory, health, time, switches, env, snapshots,
                     target, source, backups)

