"""Defects an independent review found in the worker execution path, each kept as a test."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bot.notifier import SlackNotifier
from bot.worker import Worker
from handlers import approvals, precedence
from handlers.execution import execute, fail
from handlers.model import Status
from tests.fakes.ports import deployment
from tests.fakes.world import ALICE, CAROL, LEADS, fake_world


class SlowSlack:
    """A busy channel: each post takes a moment (Slack, or the posting pace)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def chat_postMessage(self, **kw: Any) -> dict[str, Any]:
        time.sleep(0.3)
        with self.lock:
            self.posts.append(kw)
            return {"ts": f"1700000001.{len(self.posts):06d}"}

    def chat_update(self, **kw: Any) -> dict[str, Any]:
        return {"ok": True}

    def chat_postEphemeral(self, **kw: Any) -> dict[str, Any]:
        return {"ok": True}


def test_one_progress_message_when_execution_fails_fast(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    incident = w.request(ALICE, "code")
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    slack = SlowSlack()
    w.svc.notifier = SlackNotifier(slack, w.svc.policy, w.clock, w.svc.live, w.svc.kinds,  # type: ignore[arg-type]
                                   w.store)
    w.vercel.script = ["fail-job"]
    assert execute(w.svc, incident.id).status is Status.FAILED
    assert [p.get("text") for p in slack.posts] == ["RB-1 progress", "RB-1 failed"]


class _Leader:
    def acquire_leader(self, name: str, ttl: int) -> bool:
        return True

    def release_leader(self, name: str) -> None:
        pass


def test_a_takeover_runs_on_the_pool_not_in_the_workers_way(tmp_path: Path) -> None:
    """A stale execution whose provider is slow must not hold up the dispatcher (new approvals,
    reminders, expiries) nor the leader lock's renewal."""
    w = fake_world(tmp_path)
    stale = w.request(ALICE, "code")
    assert approvals.approve(w.svc, CAROL, stale.id, stale.plan_hash).decided
    assert w.store.claim_execution(stale.id, "crashed", timedelta(seconds=30))
    w.clock.advance(31)
    gate = threading.Event()
    real = w.vercel.alias_state

    def slow(project: str):  # noqa: ANN202
        gate.wait(10)
        return real(project)

    w.vercel.alias_state = slow  # type: ignore[method-assign]
    container = SimpleNamespace(policy=w.svc.policy, redis=_Leader(), services=w.svc, close=lambda: None)
    worker = Worker(container, "w1", concurrency=4)  # type: ignore[arg-type]
    started = time.monotonic()
    worker._tick()  # housekeeping finds the stale execution and hands it to the pool
    assert time.monotonic() - started < 1.0
    other = w.request(ALICE, "switch", name="checkout")
    assert approvals.approve(w.svc, CAROL, other.id, other.plan_hash).decided
    assert worker.dispatch() == 1  # the dispatcher is free while the takeover waits on Vercel
    time.sleep(0.3)
    assert w.store.get(other.id).rolled_back_at is not None  # its change went out meanwhile
    # Its read-back gave way to the takeover, still on its way to a change, for at most the window.
    deadline = time.monotonic() + precedence.WINDOW + 2
    while w.store.get(other.id).status is not Status.MONITORING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.store.get(other.id).status is Status.MONITORING
    worker._tick()  # the takeover is in flight: not started twice
    gate.set()
    worker._executions.shutdown(wait=True)  # the takeover, on the executions' pool
    assert w.store.get(stale.id).status is Status.MONITORING and w.vercel.rollbacks == ["dpl_good"]


def test_approvals_voided_by_a_plan_change_stay_void_if_the_plan_changes_back(tmp_path: Path) -> None:
    w = fake_world(tmp_path, approvals=2)
    a = w.request(ALICE, "code")
    approvals.approve(w.svc, CAROL, a.id, a.plan_hash)
    assert approvals.approve(w.svc, LEADS[0], a.id, a.plan_hash).decided
    w.vercel.deployments.append(deployment("dpl_hotfix", 1))
    w.vercel.production = "dpl_hotfix"  # someone shipped: plan B, the approvals of A are void
    b = execute(w.svc, a.id)
    assert b.status is Status.PENDING and b.valid_approvals() == () and b.plan.revision == 1
    w.vercel.production = "dpl_bad"  # the hotfix is pulled again: the plan is A's again
    approvals.approve(w.svc, LEADS[1], a.id, b.plan_hash)
    assert approvals.approve(w.svc, LEADS[2], a.id, b.plan_hash).decided
    again = execute(w.svc, a.id)
    assert again.status is Status.PENDING and again.plan.change == a.plan.change
    assert again.plan_hash not in (a.plan_hash, b.plan_hash) and again.valid_approvals() == ()
    assert approvals.approve(w.svc, CAROL, a.id, again.plan_hash).recorded  # not "already approved"


def test_a_reopened_request_gets_a_fresh_approval_window(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    incident = w.request(ALICE, "code")
    w.clock.advance(timedelta(minutes=29, seconds=50))
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    w.clock.advance(timedelta(seconds=20))  # the worker gets to it a little later
    w.vercel.deployments.append(deployment("dpl_hotfix", 1))
    w.vercel.production = "dpl_hotfix"
    reopened = execute(w.svc, incident.id)
    assert reopened.status is Status.PENDING and reopened.expires_at == w.clock.now() + timedelta(minutes=30)
    assert approvals.approve(w.svc, CAROL, incident.id, reopened.plan_hash).decided


def test_a_fenced_failure_is_not_recorded_as_the_incidents_failure(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    incident = w.request(ALICE, "code")
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    assert w.store.claim_execution(incident.id, "stale", timedelta(seconds=30))
    w.clock.advance(31)
    assert execute(w.svc, incident.id, resume=True).status is Status.MONITORING
    fail(w.svc, incident.id, "the stale view", "stale")
    log = [(e.action, e.outcome) for e in w.store.audit_log(incident.id)]
    assert ("execute", "failed") not in log and ("execute.fenced", "ok") in log


def test_the_lease_is_kept_while_verifying(tmp_path: Path) -> None:
    """A slow verification (health checks, a slow read-back) must not let the lease run out
    and a second executor start."""
    w = fake_world(tmp_path)
    w.svc.kinds["code"].lease = timedelta(seconds=0.3)  # type: ignore[misc]
    incident = w.request(ALICE, "code")
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    real = w.health.check
    stale_seen: list[list[int]] = []

    def slow_check(urls):  # noqa: ANN001, ANN202
        for _ in range(4):
            time.sleep(0.2)
            w.clock.advance(0.2)  # the store's clock moves with real time here
            stale_seen.append(w.store.stale_executions())
        return real(urls)

    w.health.check = slow_check  # type: ignore[method-assign]
    assert execute(w.svc, incident.id).status is Status.MONITORING
    assert all(seen == [] for seen in stale_seen)


def test_a_store_error_while_holding_the_lease_stops_without_failing_the_incident(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    incident = w.request(ALICE, "code")
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    real = w.store.renew_execution
    calls = {"n": 0}

    def flaky(*args):  # noqa: ANN002, ANN202
        calls["n"] += 1
        if calls["n"] == 1:  # the kind's hold() right before the send
            raise ConnectionError("the database restarted")
        return real(*args)

    w.store.renew_execution = flaky  # type: ignore[method-assign]
    assert execute(w.svc, incident.id, heartbeat=False) is None
    assert w.store.get(incident.id).status is Status.EXECUTING and w.vercel.rollbacks == []  # resumed later
