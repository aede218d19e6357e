"""A process dies mid-incident: the worker resumes it, reading Vercel back before acting."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import psycopg
import pytest

from handlers import approvals, resolution
from handlers.commands import Rollback
from handlers.execution import execute, fail
from handlers.model import Status
from handlers.ports import NewIncident
from handlers.requests import request_rollback
from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.world import VERCEL_TOKEN, World, wait_until

LEASE = timedelta(minutes=2)


def _approved(world: World):
    """The approval that decided was committed (with its execute job); nothing ran it yet."""
    svc = world.container().services
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "crash test"))
    outcome = svc.store.approve(incident.id, CAROL, incident.plan_hash, svc.clock.now())
    assert outcome.decided
    return svc, incident


def _approved_then_crashed(world: World):
    """An executor took the lease, then its process died before it called Vercel."""
    svc, incident = _approved(world)
    assert svc.store.claim_execution(incident.id, "crashed-worker", LEASE)
    return svc, incident


def _lease_runs_out(world: World, incident_id: int) -> None:
    """The crashed executor stops renewing: its lease ends (on the database's clock)."""
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        conn.execute("UPDATE incidents SET exec_lease_until = now() - interval '1 second' WHERE id = %s",
                     (incident_id,))


@pytest.mark.reliability("fault", "The process that took the deciding click dies before executing")
def test_the_execution_job_survives_the_web_process(world: World) -> None:
    """The deciding click's process is gone: the job it wrote is all a worker needs."""
    svc, incident = _approved(world)
    world.worker().run_once()
    assert svc.store.get(incident.id).status is Status.MONITORING
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1


@pytest.mark.reliability("fault", "An executor dies after taking the lease, before calling Vercel")
def test_worker_resumes_an_execution_that_never_started(world: World) -> None:
    svc, incident = _approved_then_crashed(world)
    worker = world.worker()
    worker.run_once()
    assert svc.store.get(incident.id).status is Status.EXECUTING  # the lease holds: maybe still running
    assert world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback") == []
    _lease_runs_out(world, incident.id)
    worker.run_once()
    assert svc.store.get(incident.id).status is Status.MONITORING
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1
    assert world.vercel.production(PROJECT) == incident.plan.change[1]


@pytest.mark.reliability("fault", "An executor dies after Vercel applied the rollback")
def test_resume_does_not_repeat_a_rollback_that_already_happened(world: World) -> None:
    svc, incident = _approved_then_crashed(world)
    # The process had sent the rollback (Vercel moved production), then died before recording it.
    svc.store.start_step(incident.id, "vercel.rollback", svc.clock.now())
    response = httpx.post(f"{world.vercel.url}/v1/projects/{PROJECT}/rollback/{incident.plan.change[1]}",
                          headers={"Authorization": f"Bearer {VERCEL_TOKEN}"}, trust_env=False)
    assert response.status_code == 201
    worker = world.worker()
    worker.run_once()  # the execute job finds the lease held: the crashed executor may be alive
    _lease_runs_out(world, incident.id)
    worker.run_once()
    assert svc.store.get(incident.id).status is Status.MONITORING
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1  # only the crashed one
    log = [(e.action, e.outcome) for e in svc.store.audit_log(incident.id)]
    assert ("vercel.rollback", "skipped") in log and ("execute.resume", "ok") in log
    thread = world.slack.thread(CHANNEL, incident.root_ts)
    assert any("Verified" in json.dumps(m.get("blocks")) for m in thread)


@pytest.mark.reliability("fault", "A stalled executor wakes up after losing its lease", trials=2)
def test_a_stalled_executor_cannot_send_after_losing_its_lease(world: World) -> None:
    """A is waiting out a 429 when its lease runs out; the worker takes over and rolls back;
    when A wakes it must not send again (it renews its lease before every send, and cannot)."""
    world.vercel.script_rate_limit(f"/v1/projects/{PROJECT}/rollback", times=1, retry_after=3)
    svc, incident = _approved(world)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # A frozen process: no heartbeat keeps its lease while it waits.
        stalled = pool.submit(execute, svc, incident.id, "stalled", heartbeat=False)
        wait_until(lambda: world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback"), message="A's first send")
        _lease_runs_out(world, incident.id)
        world.worker().run_once()  # takes over: reads back, sends, verifies
        assert stalled.result(timeout=30) is None  # A stopped: lease lost
    statuses = [c["status"] for c in world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")]
    assert statuses == [429, 201]
    assert svc.store.get(incident.id).status is Status.MONITORING
    log = [(e.action, e.outcome) for e in svc.store.audit_log(incident.id)]
    assert ("execute", "lease_lost") in log and log.count(("vercel.rollback", "attempt")) == 2


@pytest.mark.reliability("fault", "A stalled executor wakes up after losing its lease")
def test_a_stale_executor_cannot_fail_an_incident_it_no_longer_owns(world: World) -> None:
    svc, incident = _approved_then_crashed(world)
    _lease_runs_out(world, incident.id)
    assert svc.store.claim_execution(incident.id, "the-worker", LEASE)
    assert fail(svc, incident.id, "stale view of the world", "crashed-worker").status is Status.EXECUTING


@pytest.mark.reliability("fault", "A request interrupted before its Slack message")
def test_an_interrupted_request_does_not_block_the_environment(world: World) -> None:
    svc = world.container().services
    env = svc.policy.environments["prod"]
    plan = svc.kinds["code"].plan("prod", env, {})
    now = svc.clock.now()
    orphan = svc.store.create_incident(NewIncident("code", "prod", ALICE, "died mid-request", plan, 1, {}, now,
                                                   now + timedelta(minutes=30)))  # never reached Slack
    world.advance(timedelta(minutes=3))
    world.worker().run_once()
    assert svc.store.get(orphan.id).status is Status.FAILED
    assert request_rollback(svc, ALICE, Rollback("code", "prod", "again")).ref == "RB-2"


@pytest.mark.reliability("fault", "Slack refuses the post-incident summary (archived channel)")
def test_the_summary_is_delivered_by_the_worker_when_slack_refused_it(world: World) -> None:
    svc = world.container().services
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "summary test"))
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    execute(svc, incident.id)
    world.slack.archive_channel(CHANNEL)
    resolution.resolve(svc, CAROL, incident.id, "cause", "lessons")
    assert not [m for m in world.slack.messages(CHANNEL) if "Post-incident summary" in json.dumps(m.get("blocks"))]
    world.slack.unarchive_channel(CHANNEL)
    world.worker().run_once()
    top = [m for m in world.slack.messages(CHANNEL) if m.get("thread_ts", m["ts"]) == m["ts"]]
    assert len([m for m in top if "Post-incident summary" in json.dumps(m.get("blocks"))]) == 1
    world.worker().run_once()  # nothing left to deliver, nothing posted twice
    assert len([m for m in world.slack.messages(CHANNEL) if m.get("thread_ts", m["ts"]) == m["ts"]]) == 2
