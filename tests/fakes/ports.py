"""In-memory fakes of the core's other ports: the clock, live state, the notifier, the user
directory, health checks and Vercel. Each records what it was asked, so a test can assert it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers.code import AliasState, Deployment
from handlers.drills import StandingReminder
from handlers.kind import Verification
from handlers.model import FollowUp, HealthResult, Incident, StepRun
from handlers.plans import PlanBase
from handlers.ports import DeliveryFailed, DirectoryUnavailable, ProviderError
from handlers.summary import Summary
from tests.fakes.store import FakeStore

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


class FakeClock:
    """Stands still until told to move."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> None:
        with self._lock:
            self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


class FakeLive:
    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.threads: dict[int, dict[str, str]] = {}

    def first_delivery(self, key: str, ttl_seconds: int = 600) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def thread_refs(self, incident_id: int) -> dict[str, str] | None:
        return self.threads.get(incident_id)

    def remember_thread(self, incident_id: int, refs: dict[str, str]) -> None:
        self.threads.setdefault(incident_id, {}).update({k: v for k, v in refs.items() if v})

    def throttle(self, key: str, per_second: float, burst: int = 1) -> float:
        return 0.0


@dataclass
class FakeNotifier:
    """Records every message by kind: ``sent["failure"]`` holds the failure notes, and so on."""

    sent: dict[str, list[Any]] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)  # kinds whose delivery fails definitely
    uncertain: set[str] = field(default_factory=set)  # kinds whose delivery may or may not go through
    roots: dict[int, str] = field(default_factory=dict)  # root messages posted, by incident
    posted_unseen: dict[int, str] = field(default_factory=dict)  # roots Slack took while the caller heard nothing
    ledger: FakeStore | None = None  # the standing reminders' ledger, kept as the real poster keeps it
    _ts: int = 0

    def _record(self, kind: str, *what: Any) -> str:
        if kind in self.refuse:
            raise DeliveryFailed(f"{kind} refused", definite=True)
        if kind in self.uncertain:
            raise DeliveryFailed(f"{kind} uncertain", definite=False)
        self.sent.setdefault(kind, []).append(what)
        self._ts += 1
        return f"1700000000.{self._ts:06d}"

    def count(self, kind: str) -> int:
        return len(self.sent.get(kind, []))

    def post_root(self, incident: Incident, steps: Sequence[StepRun]) -> tuple[str, str]:
        ts = self._record("root", incident)
        self.roots[incident.id] = ts
        return "C01INCIDENTS", ts

    def find_root(self, incident: Incident) -> tuple[str, str] | None:
        if "find_root" in self.uncertain:
            raise DeliveryFailed("Slack could not be read", definite=False)
        ts = self.roots.get(incident.id) or self.posted_unseen.get(incident.id)
        return ("C01INCIDENTS", ts) if ts else None

    def refresh_root(self, incident: Incident, steps: Sequence[StepRun]) -> None:
        self.sent.setdefault("refresh", []).append((incident,))

    def notify_team(self, incident: Incident, mentions: Sequence[str]) -> None:
        self.sent.setdefault("notify", []).append((incident, tuple(mentions)))

    def progress(self, incident: Incident, steps: Sequence[StepRun]) -> str | None:
        self.sent.setdefault("progress", []).append((incident, [s.name for s in steps]))
        return incident.progress_ts or "1700000000.999999"

    def verification(self, incident: Incident, result: Verification, health: Sequence[HealthResult], ok: bool) -> None:
        self.sent.setdefault("verification", []).append((incident, result, ok))

    def reminder(self, incident: Incident, index: int, total: int, health: Sequence[HealthResult]) -> None:
        self._record("reminder", incident, index, total)

    def failure(self, incident: Incident, error: str, next_step: str) -> None:
        self.sent.setdefault("failure", []).append((incident, error, next_step))

    def summary(self, incident: Incident, summary: Summary) -> str:
        return self._record("summary", incident, summary)

    def plan_changed(self, incident: Incident, old: PlanBase) -> None:
        self.sent.setdefault("plan_changed", []).append((incident, old))

    def closed(self, incident: Incident) -> None:
        self.sent.setdefault("closed", []).append((incident,))

    def standing_reminder(self, reminder: StandingReminder) -> str:
        """Keeps the standing ledger as the Slack notifier's poster does (when given one)."""
        if self.ledger is None:
            return self._record("standing", reminder)
        record = self.ledger.begin_standing(reminder.series, reminder.seq, self.ledger.clock.now())
        if record.state == "posted" and record.ts:
            return record.ts
        if record.state == "busy":
            raise DeliveryFailed("another process is posting it", definite=False)
        try:
            ts = self._record("standing", reminder)
        except DeliveryFailed as error:
            (self.ledger.standing_not_posted if error.definite else self.ledger.standing_unsettled)(
                reminder.series, reminder.seq)
            raise
        self.ledger.standing_posted(reminder.series, reminder.seq, ts, self.ledger.clock.now())
        return ts

    def tell(self, channel: str, user: str, text: str) -> None:
        self.sent.setdefault("tell", []).append((user, text))

    def answer(self, channel: str, response_url: str | None, user: str, text: str) -> None:
        self.sent.setdefault("answer", []).append((user, text))

    def refresh_summary(self, incident: Incident, summary: Summary) -> None:
        self.sent.setdefault("refresh_summary", []).append((incident, summary))

    def follow_up(self, incident: Incident, follow_up: FollowUp, round_: int) -> None:
        self._record("follow_up", incident, follow_up, round_)

    def follow_up_done(self, incident: Incident, follow_up: FollowUp, channel: str, ts: str) -> None:
        self.sent.setdefault("follow_up_done", []).append((follow_up, channel, ts))


@dataclass
class FakeDirectory:
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    down: bool = False

    def group_members(self, group_id: str) -> frozenset[str]:
        if self.down:
            raise DirectoryUnavailable(group_id)
        return self.groups.get(group_id, frozenset())


@dataclass
class FakeHealth:
    healthy: bool = True
    checked: list[tuple[str, ...]] = field(default_factory=list)

    def check(self, urls: Sequence[str]) -> list[HealthResult]:
        self.checked.append(tuple(urls))
        return [HealthResult(u, self.healthy, 200 if self.healthy else 500, 3) for u in urls]


def deployment(uid: str, minutes_ago: int, sha: str = "") -> Deployment:
    return Deployment(uid=uid, url=f"{uid}.vercel.app", created_at=T0 - timedelta(minutes=minutes_ago),
                      commit_sha=sha or (uid.encode().hex() * 8)[:40], commit_message=f"commit of {uid}",
                      author="Jonas")


@dataclass
class FakeVercel:
    """A project's production deployments and its alias, as Vercel keeps them.

    Scripts, consumed in order by ``rollback``: "ok" (applies), "timeout-applied" (applies, then
    raises an uncertain timeout), "timeout-lost" (raises an uncertain timeout, applies nothing),
    "5xx" (uncertain, applies nothing), "429" (definite refusal), "fail-job" (the job fails),
    "phantom" (the job says succeeded, production stays)."""

    deployments: list[Deployment] = field(default_factory=lambda: [
        deployment("dpl_old", 300), deployment("dpl_good", 120), deployment("dpl_bad", 30)])
    production: str = "dpl_bad"
    job: tuple[str, str, int] | None = None  # (status, to, requested_at)
    script: list[str] = field(default_factory=list)
    rollbacks: list[str] = field(default_factory=list)  # every POST, applied or not
    reads: int = 0
    reads_at_send: list[int] = field(default_factory=list)  # ``reads`` as each POST went out
    unreadable: bool = False
    _clock: int = 1000

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def production_deployments(self, project: str, limit: int = 20) -> list[Deployment]:
        self._read()
        return sorted(self.deployments, key=lambda d: d.created_at, reverse=True)[:limit]

    def deployment(self, uid: str) -> Deployment:
        self._read()
        return next(d for d in self.deployments if d.uid == uid)

    def alias_state(self, project: str) -> AliasState:
        self._read()
        if self.job is None:
            return AliasState(self.production, None, None, None)
        status, to, at = self.job
        return AliasState(self.production, status, to, at)

    def _read(self) -> None:
        self.reads += 1
        if self.unreadable:
            raise ProviderError("Vercel answered 503: maintenance", status=503)

    def rollback(self, project: str, deployment_uid: str, description: str) -> None:
        self.rollbacks.append(deployment_uid)
        self.reads_at_send.append(self.reads)
        step = self.script.pop(0) if self.script else "ok"
        if step == "429":
            raise ProviderError("Vercel answered 429", status=429, code="rate_limited", retry_after=0.0)
        if step in ("5xx", "timeout-lost"):
            raise ProviderError(f"Vercel: {step}", status=502 if step == "5xx" else None, uncertain=True)
        if step == "fail-job":
            self.job = ("failed", deployment_uid, self._tick())
            return
        if step == "phantom":
            self.job = ("succeeded", deployment_uid, self._tick())
            return
        self.job = ("succeeded", deployment_uid, self._tick())
        self.production = deployment_uid
        if step == "timeout-applied":
            raise ProviderError("Vercel did not answer in time", code="timeout", uncertain=True)


@dataclass
class FakeFlags:
    """An Edge Config's items. Scripts, consumed in order by ``set_flag``: "ok" (applies),
    "timeout-applied" (applies, then an uncertain timeout), "timeout-lost" (an uncertain timeout,
    applies nothing), "429" (definite refusal). ``lag``: reads that still show the old value after
    a write (propagation)."""

    items: dict[str, Any] = field(default_factory=lambda: {"new_checkout": True, "promo_banner": "Sale!",
                                                           "max_cart_items": 50, "search_v2": False})
    script: list[str] = field(default_factory=list)
    patches: list[tuple[str, str, Any]] = field(default_factory=list)  # every PATCH, applied or not
    lag: int = 0
    unreadable: bool = False
    _stale: dict[str, Any] = field(default_factory=dict)
    _stale_reads: int = 0

    def flag_items(self, config_id: str) -> dict[str, Any]:
        if self.unreadable:
            raise ProviderError("Vercel answered 503: maintenance", status=503)
        if self._stale_reads > 0:
            self._stale_reads -= 1
            return {**self.items, **self._stale}
        return dict(self.items)

    def set_flag(self, config_id: str, key: str, value: Any) -> None:
        self.patches.append((config_id, key, value))
        step = self.script.pop(0) if self.script else "ok"
        if step == "429":
            raise ProviderError("Vercel answered 429 rate_limited", status=429, retry_after=1.0)
        if step == "timeout-lost":
            raise ProviderError("Vercel did not answer in time", code="timeout", uncertain=True)
        if key not in self.items:
            raise ProviderError(f"Vercel answered 404 not_found: Item {key} not found", status=404)
        self._stale, self._stale_reads = {key: self.items[key]}, self.lag
        self.items[key] = value
        if step == "timeout-applied":
            raise ProviderError("Vercel did not answer in time", code="timeout", uncertain=True)
