"""The incident lifecycle on real Postgres, Redis and the emulators, driven in-process."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
import pytest
import redis

from handlers import approvals, resolution
from handlers.commands import Rollback
from handlers.execution import execute
from handlers.model import Status
from handlers.requests import request_rollback
from handlers.services import Refused, Services
from sandbox.team import ALICE, BOB, CAROL, CHANNEL, DAN, PROJECT
from tests.world import LEADS, World


def _svc(world: World) -> Services:
    return world.container().services


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def _request(svc: Services, user: str = ALICE, reason: str = "checkout 500"):
    return request_rollback(svc, user, Rollback("code", "prod", reason))


def test_request_posts_root_and_notifies_the_team(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    assert incident.ref == "RB-1" and incident.status is Status.PENDING
    assert incident.plan.change[0] == world.vercel.production(PROJECT)
    assert incident.checklist["notify"] is True and incident.checklist["root_cause"] is False
    root = world.slack.message(CHANNEL, incident.root_ts)
    assert "Notify team" in _text(root)
    thread = world.slack.thread(CHANNEL, incident.root_ts)
    assert len(thread) == 1 and "<!subteam^S01ONCALL>" in _text(thread[0])


def test_requester_role_is_checked_and_refusals_are_audited(world: World) -> None:
    svc = _svc(world)
    with pytest.raises(Refused, match="needs the role `engineer` or `lead`, and you hold `dba`"):
        _request(svc, DAN)
    assert world.slack.messages() == []
    log = _audit(world)
    assert log == [("U01DAN", "request.code", "refused")]


def test_one_rollback_per_environment_and_type(world: World) -> None:
    svc = _svc(world)
    first = _request(svc)
    with pytest.raises(Refused, match="RB-1 .* is still pending"):
        _request(svc, BOB, "me too")
    approvals.deny(svc, CAROL, first.id, "fixed forward instead")
    second = _request(svc, BOB, "again")  # the lock went with the denial
    assert second.ref == "RB-2"


@pytest.mark.reliability("fault", "Concurrent requests for the same environment")
def test_the_lock_holds_under_concurrent_requests(world: World) -> None:
    svc = _svc(world)

    def attempt(user: str) -> str:
        try:
            return _request(svc, user).ref
        except Refused:
            return "refused"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, [ALICE, BOB, CAROL] + LEADS[:5]))
    assert sorted(results).count("refused") == 7
    assert len([m for m in world.slack.messages(CHANNEL) if "Pre-rollback checklist" in _text(m)]) == 1


def test_deny_needs_a_reason_and_the_right_person(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    with pytest.raises(Refused, match="only the requester or `lead`"):
        approvals.deny(svc, BOB, incident.id, "nope")
    with pytest.raises(Refused, match="needs a reason"):
        approvals.deny(svc, CAROL, incident.id, "  ")
    denied = approvals.deny(svc, CAROL, incident.id, "the fix is already deploying <!here>")
    assert denied.status is Status.DENIED
    root = world.slack.message(CHANNEL, incident.root_ts)
    assert "Denied by <@U01CAROL>" in _text(root) and "&lt;!here&gt;" in _text(root)
    assert all(b.get("block_id") != "decision" for b in root["blocks"])
    note = world.slack.thread(CHANNEL, incident.root_ts)[-1]
    assert "<@U01ALICE>, RB-1 was denied by <@U01CAROL>" in _text(note)
    with pytest.raises(Refused, match="already denied"):
        approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    assert world.vercel.calls_to("POST", "/v1/") == []


def test_unapproved_requests_expire_by_the_worker(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    worker = world.worker()
    assert worker.run_once() == 0
    world.advance(timedelta(minutes=31))
    assert worker.run_once() == 1
    assert svc.store.get(incident.id).status is Status.EXPIRED
    root = world.slack.message(CHANNEL, incident.root_ts)
    assert "Expired without approval" in _text(root)
    assert "expired without enough approvals" in _text(world.slack.thread(CHANNEL, incident.root_ts)[-1])
    assert all(b.get("block_id") != "decision" for b in root["blocks"])
    with pytest.raises(Refused, match="already expired"):
        approvals.approve(svc, CAROL, incident.id, incident.plan_hash)


def test_approval_before_expiry_cancels_it(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    outcome = approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    assert outcome.decided
    execute(svc, incident.id)
    world.advance(timedelta(minutes=31))
    world.worker().run_once()
    assert svc.store.get(incident.id).status is Status.MONITORING


def test_a_second_worker_stays_idle_while_the_first_leads(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    first, second = world.worker("worker-a"), world.worker("worker-b")
    assert first.run_once() == 0  # leads; nothing due yet
    world.advance(timedelta(minutes=31))
    assert second.run_once() == 0 and not second.leading  # idle: the expiry is due, but not its job
    assert svc.store.get(incident.id).status is Status.PENDING
    assert first.run_once() == 1 and first.leading
    assert svc.store.get(incident.id).status is Status.EXPIRED


@pytest.mark.reliability("fault", "Vercel: the alias job fails")
def test_vercel_alias_failure_fails_the_incident_and_releases_the_lock(world: World) -> None:
    svc = _svc(world)
    world.vercel.fail_next_alias(PROJECT, "Deployment is not eligible")
    incident = _request(svc)
    bad = world.vercel.production(PROJECT)
    outcome = approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    assert outcome.decided
    failed = execute(svc, incident.id)
    assert failed is not None and failed.status is Status.FAILED
    assert world.vercel.production(PROJECT) == bad
    thread = [_text(m) for m in world.slack.thread(CHANNEL, incident.root_ts)]
    assert any("RB-1 failed" in t and "Promote to Production" in t for t in thread)
    assert _request(svc, BOB, "retry").ref == "RB-2"  # lock released
    actions = [a for _, a, o in _audit(world) if o == "failed"]
    assert "execute" in actions


@pytest.mark.reliability("fault", "Vercel: 5xx on the rollback call")
def test_vercel_server_errors_do_not_duplicate_the_rollback(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    world.vercel.script_error(f"/v1/projects/{PROJECT}/rollback", status=502, times=1)
    outcome = approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    assert outcome.decided
    done = execute(svc, incident.id)
    assert done is not None and done.status is Status.MONITORING
    posts = world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")
    assert [c["status"] for c in posts] == [502, 201]  # retried only after reading back


def test_plan_change_voids_approvals(world: World) -> None:
    """Someone ships while the request waits: before its first call the worker re-reads Vercel,
    puts the incident back to pending with the new plan, and every approval so far is void."""
    svc = _svc(world)
    incident = _request(svc)
    newest = world.vercel.add_deployment(PROJECT, commit_sha="f" * 40, commit_message="hotfix", author="Eve")
    world.vercel.set_production(PROJECT, newest["uid"])
    assert approvals.approve(svc, CAROL, incident.id, incident.plan_hash).decided
    reopened = execute(svc, incident.id)
    assert reopened is not None and reopened.status is Status.PENDING
    assert reopened.plan.change[0] == newest["uid"] and reopened.plan_hash != incident.plan_hash
    assert reopened.valid_approvals() == () and reopened.decided_by is None
    assert world.vercel.calls_to("POST", "/v1/") == []
    assert any("Production changed" in _text(m) for m in world.slack.thread(CHANNEL, incident.root_ts))
    assert "approve" in _text(world.slack.message(CHANNEL, incident.root_ts))  # the buttons are back
    with pytest.raises(Refused, match="plan .* changed after this button was drawn"):
        approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    assert approvals.approve(svc, CAROL, incident.id, reopened.plan_hash).decided
    done = execute(svc, incident.id)
    assert done is not None and done.status is Status.MONITORING
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1
    assert [j.kind for j in svc.store.pending_jobs(incident.id)].count("expire") == 0  # decided again


@pytest.mark.reliability("fault", "Two approvals in the same instant")
def test_two_threads_approving_at_once_decide_exactly_once(world: World, database_url: str) -> None:
    world.config_path.write_text(world.config_path.read_text().replace("approvals = 1", "approvals = 2"))
    svc = _svc(world)
    incident = _request(svc)
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda u: approvals.approve(svc, u, incident.id, incident.plan_hash), LEADS[:2]))
    assert sorted(o.decided for o in outcomes) == [False, True]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "executing"


@pytest.mark.reliability("fault", "Redis flushed mid-incident (in process)")
def test_redis_flush_loses_nothing(world: World, redis_url: str) -> None:
    svc = _svc(world)
    incident = _request(svc)
    redis.Redis.from_url(redis_url).flushall()
    assert svc.live.thread_refs(incident.id) == {"channel": CHANNEL, "root_ts": incident.root_ts}
    outcome = approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    assert outcome.decided
    execute(svc, incident.id)
    thread = world.slack.thread(CHANNEL, incident.root_ts)
    assert any("Verified" in _text(m) for m in thread)
    redis.Redis.from_url(redis_url).flushall()
    world.advance(timedelta(minutes=5))
    world.worker().run_once()
    assert any("Monitoring 1/3" in _text(m) for m in world.slack.thread(CHANNEL, incident.root_ts))
    assert len([m for m in world.slack.thread(CHANNEL, incident.root_ts) if "Progress" in _text(m)]) == 1


@pytest.mark.reliability("fault", "Slack: 429 on posts")
def test_slack_rate_limit_is_honoured_without_duplicates(world: World) -> None:
    svc = _svc(world)
    world.slack.script_rate_limit("chat.postMessage", times=1, retry_after=1)
    incident = _request(svc)
    roots = [m for m in world.slack.messages(CHANNEL) if "Pre-rollback checklist" in _text(m)]
    assert len(roots) == 1 and roots[0]["ts"] == incident.root_ts
    statuses = [c["status"] for c in world.slack.calls_to("chat.postMessage")]
    assert statuses[:2] == [429, 200]


def test_resolve_rules_and_summary(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    with pytest.raises(Refused, match="only a monitored or failed rollback can be resolved"):
        resolution.resolvable(svc, CAROL, incident.id)
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    execute(svc, incident.id)
    with pytest.raises(Refused, match="only the requester, requesters or approvers"):
        resolution.resolvable(svc, DAN, incident.id)
    closed, summary = resolution.resolve(svc, ALICE, incident.id, "bad cache", "canary")
    assert closed.status is Status.RESOLVED and summary.root_cause == "bad cache"
    assert summary.time_to_rollback_seconds is not None and summary.within_target is True
    with pytest.raises(Refused):
        resolution.resolve(svc, ALICE, incident.id, "again", "again")
    assert svc.store.pending_jobs(incident.id) == []  # remaining reminders cancelled


def _audit(world: World) -> list[tuple[str, str, str]]:
    with psycopg.connect(world.database_url) as conn:
        return [tuple(r) for r in conn.execute("SELECT actor, action, outcome FROM audit_log ORDER BY id")]


@pytest.mark.reliability("fault", "Vercel: the connection drops after the rollback call was applied")
def test_a_dropped_connection_after_the_rollback_call_does_not_fail_the_incident(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    world.vercel.script_drop(f"/v1/projects/{PROJECT}/rollback")  # takes effect, no answer
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    done = execute(svc, incident.id)
    assert done is not None and done.status is Status.MONITORING
    assert [c["status"] for c in world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")] == [0]
    assert world.vercel.production(PROJECT) == incident.plan.change[1]


@pytest.mark.reliability("fault", "Slack down after the approval")
def test_slack_down_after_approval_does_not_fail_the_rollback(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    world.slack.stop()  # Slack becomes unreachable right after the decision
    done = execute(svc, incident.id)
    assert done is not None and done.status is Status.MONITORING
    assert world.vercel.production(PROJECT) == incident.plan.change[1]
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1


@pytest.mark.reliability("fault", "Slack refuses a reminder")
def test_a_reminder_slack_refused_is_retried_and_sent_once(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    execute(svc, incident.id)
    worker = world.worker()
    world.advance(timedelta(minutes=5))
    world.slack.archive_channel(CHANNEL)  # Slack answers is_archived: certainly not posted
    worker.run_once()
    assert not any("Monitoring 1/3" in _text(m) for m in world.slack.thread(CHANNEL, incident.root_ts))
    world.slack.unarchive_channel(CHANNEL)
    world.advance(timedelta(seconds=31))
    worker.run_once()
    worker.run_once()
    reminders = [m for m in world.slack.thread(CHANNEL, incident.root_ts) if "Monitoring 1/3" in _text(m)]
    assert len(reminders) == 1


@pytest.mark.reliability("fault", "A slow Vercel call outlasting the worker's patience, lease renewed")
def test_a_live_execution_waiting_on_vercel_is_not_taken_over(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    world.vercel.script_rate_limit(f"/v1/projects/{PROJECT}/rollback", times=1, retry_after=2)
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(execute, svc, incident.id)
        worker = world.worker()
        while not running.done():
            world.advance(timedelta(minutes=1))  # the worker's clock runs far ahead: leases use the DB's
            worker.run_once()
            time.sleep(0.1)
        assert running.result().status is Status.MONITORING
    statuses = [c["status"] for c in world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")]
    assert statuses == [429, 201]


def test_outbound_posts_are_paced_per_channel_across_processes(world: World) -> None:
    """Slack's pace (about one post per second per channel, short bursts allowed), shared by
    every process through Redis."""
    first, second = world.container().redis, world.container().redis
    waits = [r.throttle("chat.postMessage:C9", 1.0, 3) for r in (first, second, first, second, first)]
    assert waits[:3] == [0.0, 0.0, 0.0]  # a burst of three
    assert 0.9 <= waits[3] <= 1.0 and 0.9 <= waits[4] <= 1.0  # then one a second, whoever asks
    assert first.throttle("chat.postMessage:C8", 1.0, 3) == 0.0  # each channel has its own budget
    time.sleep(waits[3])
    assert second.throttle("chat.postMessage:C9", 1.0, 3) == 0.0 and first.throttle("chat.postMessage:C9", 1.0, 3) > 0


def test_an_approval_after_the_timeout_is_refused_before_the_worker_runs(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    world.advance(timedelta(minutes=31))  # no worker tick: the request is still pending in the store
    with pytest.raises(Refused, match="already expired"):
        approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    assert svc.store.get(incident.id).status is Status.EXPIRED
    late = svc.store.approve(incident.id, LEADS[0], incident.plan_hash, incident.expires_at + timedelta(seconds=1))
    assert not late.recorded and not late.decided  # the store refuses it too
    assert world.vercel.calls_to("POST", "/v1/") == []


@pytest.mark.reliability("fault", "The worker dies after posting a reminder, before finishing its job")
def test_a_reminder_whose_worker_died_mid_post_is_not_posted_again(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    execute(svc, incident.id)
    world.advance(timedelta(minutes=5))
    [job] = svc.store.claim_due(svc.clock.now(), "dies-after-posting")
    from handlers.monitoring import run_job

    assert run_job(svc, job) == "reminded"  # posted; the worker dies before finish_job
    world.advance(timedelta(minutes=6))  # the job's lease runs out: it is claimed again
    world.worker().run_once()
    reminders = [m for m in world.slack.thread(CHANNEL, incident.root_ts) if "Monitoring 1/3" in _text(m)]
    assert len(reminders) == 1


@pytest.mark.reliability("fault", "Vercel says succeeded but production did not move")
def test_a_read_back_that_disagrees_fails_the_incident(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    world.vercel.phantom_next_alias(PROJECT)  # Vercel says succeeded; production stays put
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    failed = execute(svc, incident.id)
    assert failed is not None and failed.status is Status.FAILED and "read-back" in (failed.failure or "")
    assert any("read-back" in _text(m) for m in world.slack.thread(CHANNEL, incident.root_ts))


def test_only_the_requester_can_cancel(world: World) -> None:
    svc = _svc(world)
    incident = _request(svc)
    with pytest.raises(Refused, match="who requested RB-1, can cancel it"):
        approvals.cancel(svc, CAROL, incident.id)
    assert approvals.cancel(svc, ALICE, incident.id).status is Status.CANCELLED
    assert ("U01CAROL", "cancel", "refused") in _audit(world)
    assert _request(svc, BOB, "again").ref == "RB-2"
