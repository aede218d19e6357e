"""Exactly once when Vercel is slow or ambiguous: after an uncertain answer nothing is sent again
until Vercel's own record (``lastAliasRequest``) shows the first request did not take effect."""

from __future__ import annotations

from dataclasses import replace

import pytest

from handlers import approvals
from handlers.code import CodeKind
from handlers.commands import Rollback
from handlers.execution import execute
from handlers.kind import KindRegistry
from handlers.model import Status
from handlers.requests import request_rollback
from handlers.services import Services
from integrations.vercel import VercelClient
from sandbox.team import ALICE, CAROL, PROJECT
from tests.world import VERCEL_TOKEN, World

ROLLBACK = f"/v1/projects/{PROJECT}/rollback"


def _impatient(world: World, *, timeout: float = 0.5, window: float = 5.0) -> Services:
    """The bot's services with a Vercel client that gives up after ``timeout`` seconds."""
    svc = world.container().services
    client = VercelClient(VERCEL_TOKEN, base_url=world.vercel.url, timeout=timeout)
    return replace(svc, kinds=KindRegistry([CodeKind(client, uncertain_window=window)]))


def _approved(svc: Services) -> int:
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "uncertain"))
    assert approvals.approve(svc, CAROL, incident.id, incident.plan_hash).decided
    return incident.id


def _log(svc: Services, incident_id: int) -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in svc.store.audit_log(incident_id)]


@pytest.mark.reliability("fault", "Vercel: the rollback call times out, and Vercel applies it late")
def test_a_rollback_applied_after_the_client_timed_out_is_sent_once(world: World) -> None:
    svc = _impatient(world)
    incident_id = _approved(svc)
    target = svc.store.get(incident_id).plan.change[1]
    world.vercel.script_late(ROLLBACK, delay=1.5)  # applied 1.5 s later; the client gives up at 0.5 s
    done = execute(svc, incident_id)
    assert done is not None and done.status is Status.MONITORING
    assert len(world.vercel.calls_to("POST", ROLLBACK)) == 1  # one call reached Vercel and took effect
    assert world.vercel.production(PROJECT) == target
    log = _log(svc, incident_id)
    assert log.count(("vercel.rollback", "attempt")) == 1 and ("vercel.rollback", "uncertain") in log
    assert ("vercel.rollback", "ok") in log and ("vercel.rollback", "not_taken") not in log


@pytest.mark.reliability("fault", "Vercel: a 5xx on the rollback call that did not take")
def test_a_server_error_that_did_not_take_is_sent_again_after_the_record_shows_it(world: World) -> None:
    svc = _impatient(world, window=1.0)
    incident_id = _approved(svc)
    world.vercel.script_error(ROLLBACK, status=502, times=1)
    done = execute(svc, incident_id)
    assert done is not None and done.status is Status.MONITORING
    assert [c["status"] for c in world.vercel.calls_to("POST", ROLLBACK)] == [502, 201]
    log = _log(svc, incident_id)
    assert log.index(("vercel.rollback", "not_taken")) < len(log) - 1 - log[::-1].index(("vercel.rollback", "attempt"))


@pytest.mark.reliability("fault", "Vercel: a late rollback whose alias job then fails")
def test_a_late_request_whose_job_failed_fails_the_rollback_without_a_resend(world: World) -> None:
    """The call timed out; Vercel's record then shows our job, failed: as if Vercel had answered."""
    svc = _impatient(world)
    incident_id = _approved(svc)
    world.vercel.script_late(ROLLBACK, delay=1.0)
    world.vercel.fail_next_alias(PROJECT)
    failed = execute(svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED and "alias job as failed" in (failed.failure or "")
    assert len(world.vercel.calls_to("POST", ROLLBACK)) == 1
    assert ("vercel.rollback", "not_taken") not in _log(svc, incident_id)


@pytest.mark.reliability("fault", "Vercel: every answer uncertain")
def test_it_gives_up_without_a_blind_resend_when_every_answer_is_uncertain(world: World) -> None:
    svc = _impatient(world, window=0.5)
    incident_id = _approved(svc)
    world.vercel.script_error(ROLLBACK, status=503, times=10)
    failed = execute(svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED
    assert "none of them took effect" in (failed.failure or "")
    posts = world.vercel.calls_to("POST", ROLLBACK)
    assert len(posts) == 4 and all(c["status"] == 503 for c in posts)  # bounded, each after a read-back
    log = _log(svc, incident_id)
    assert log.count(("vercel.rollback", "not_taken")) == 4
