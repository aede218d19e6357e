"""A process dies mid-incident: the worker resumes it, reading Vercel back before acting."""

from __future__ import annotations

import json

import httpx
import psycopg

from handlers.commands import Rollback
from handlers.execution import LEASE
from handlers.model import Status
from handlers.requests import request_rollback
from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.world import VERCEL_TOKEN, World


def _approved_then_crashed(world: World):
    """The approval that decided was committed, then the web process died before executing."""
    svc = world.container().services
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "crash test"))
    outcome = svc.store.approve(incident.id, CAROL, incident.plan_hash, svc.clock.now(), "crashed-web", LEASE)
    assert outcome.decided
    return svc, incident


def _lease_runs_out(world: World, incident_id: int) -> None:
    """The crashed executor stops renewing: its lease ends (on the database's clock)."""
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        conn.execute("UPDATE incidents SET exec_lease_until = now() - interval '1 second' WHERE id = %s",
                     (incident_id,))


def test_worker_resumes_an_execution_that_never_started(world: World) -> None:
    svc, incident = _approved_then_crashed(world)
    worker = world.worker()
    worker.run_once()
    assert svc.store.get(incident.id).status is Status.EXECUTING  # the lease holds: maybe still running
    _lease_runs_out(world, incident.id)
    worker.run_once()
    assert svc.store.get(incident.id).status is Status.MONITORING
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1
    assert world.vercel.production(PROJECT) == incident.plan.to_ref


def test_resume_does_not_repeat_a_rollback_that_already_happened(world: World) -> None:
    svc, incident = _approved_then_crashed(world)
    # The process had sent the rollback (Vercel moved production), then died before recording it.
    svc.store.start_step(incident.id, "vercel.rollback", svc.clock.now())
    response = httpx.post(f"{world.vercel.url}/v1/projects/{PROJECT}/rollback/{incident.plan.to_ref}",
                          headers={"Authorization": f"Bearer {VERCEL_TOKEN}"}, trust_env=False)
    assert response.status_code == 201
    _lease_runs_out(world, incident.id)
    world.worker().run_once()
    assert svc.store.get(incident.id).status is Status.MONITORING
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1  # only the crashed one
    log = [(e.action, e.outcome) for e in svc.store.audit_log(incident.id)]
    assert ("vercel.rollback", "skipped") in log and ("execute.resume", "ok") in log
    thread = world.slack.thread(CHANNEL, incident.root_ts)
    assert any("Verified" in json.dumps(m.get("blocks")) for m in thread)
