"""The fault matrix, on a production-shaped deployment: two web and two worker processes, real
Postgres and Redis, the emulators on loopback. Each test injects one kind of fault at a bad
moment and asserts that nothing was lost (the rollback happened, every message is in the thread,
every decision is in the audit log) and nothing was doubled (one provider call, each message
once). Results feed docs/reliability.md (see tests/reliability.py)."""

from __future__ import annotations

import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from integrations.schema import migrate
from sandbox.embedded import EmbeddedServer, start_postgres, start_redis
from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.fault.cluster import Cluster, audit, identities, kill9, logs_clean, status, text_of
from tests.world import LEADS, World, make_world, wait_until

ROLLBACK = f"/v1/projects/{PROJECT}/rollback"
pytestmark = pytest.mark.slow  # minutes of kills and restarts: `pytest -m "not slow"` skips them


@pytest.fixture
def cluster(world: World) -> Iterator[Cluster]:
    running = Cluster(world)
    try:
        yield running
    finally:
        logs_clean(running.stop())


def _root(world: World) -> dict:
    return wait_until(lambda: next((m for m in world.slack.messages(CHANNEL)
                                    if (m.get("metadata") or {}).get("event_payload", {}).get("key") == "root"), None),
                      timeout=20, message="the root message")


def _verified(world: World, root: dict, timeout: float = 20) -> dict:
    return wait_until(lambda: next((m for m in world.slack.thread(CHANNEL, root["ts"]) if "Verified" in text_of(m)),
                                   None), timeout=timeout, message="the verification message")


def _exactly_once(world: World, *required: str) -> Counter[str]:
    keys = Counter(key for incident, key in identities(world, CHANNEL) if incident == 1)
    assert all(n == 1 for n in keys.values()), keys
    assert set(required) <= set(keys), keys
    return keys


def _one_rollback(world: World, sends: int = 1) -> None:
    """Production moved once, by one decided approval, and the incident is being monitored."""
    assert len(world.vercel.calls_to("POST", ROLLBACK)) == sends
    assert len([c for c in world.vercel.calls_to("POST", ROLLBACK) if c["status"] < 300]) == 1
    assert status(world) == "monitoring"
    assert len([e for e in audit(world) if e[1] == "approved"]) == 1


@pytest.mark.reliability("fault", "The same Approve clicks delivered to both web processes at once", trials=20)
def test_duplicated_clicks_across_both_web_processes_roll_back_once(world: World, cluster: Cluster) -> None:
    a, b = cluster.client(0), cluster.client(1)
    a.command(ALICE, "code prod checkout is down", channel_id=CHANNEL)
    root = _root(world)
    a.find_action(root, "approve")
    approvers = LEADS[:10]

    def click(n: int) -> int:  # each approver's click lands on both processes, at the same moment
        client = (a, b)[n % 2]
        return client.click(approvers[n // 2], channel=CHANNEL, message_ts=root["ts"], action_id="approve",
                            message=root).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert list(pool.map(click, range(20))) == [200] * 20
    _verified(world, root)
    wait_until(lambda: len([e for e in audit(world) if e[1] == "approve"]) >= 19, timeout=20,
               message="every click handled")
    _one_rollback(world)
    _exactly_once(world, "root", "notify", "progress", "verification.r0")


@pytest.mark.reliability("fault", "kill -9 of a web process (master and workers) at the deciding ack")
def test_a_web_process_killed_at_the_deciding_ack(world: World, cluster: Cluster) -> None:
    a, b = cluster.client(0), cluster.client(1)
    a.command(ALICE, "code prod checkout is down", channel_id=CHANNEL)
    root = _root(world)
    assert a.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve").status_code == 200
    kill9(cluster.webs[0].process)
    _verified(world, root)
    # The other web process serves the rest of the incident.
    assert b.command(ALICE, "status", channel_id=CHANNEL).status_code == 200
    wait_until(lambda: any("RB-1" in text_of(e) and "monitoring" in text_of(e) for e in world.slack.ephemerals(user=ALICE)),
               message="the status from the other web process")
    _one_rollback(world)
    _exactly_once(world, "root", "notify", "progress", "verification.r0")


@pytest.mark.reliability("fault", "kill -9 of the leader worker while the rollback call is in flight")
def test_the_leader_worker_killed_mid_rollback(world: World, cluster: Cluster) -> None:
    world.vercel.script_late(ROLLBACK, delay=3.0, method="POST")  # Vercel applies it, and answers, 3 s later
    a = cluster.client(0)
    a.command(ALICE, "code prod checkout is down", channel_id=CHANNEL)
    root = _root(world)
    leader = cluster.leader()
    a.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
    wait_until(lambda: ("rollbot", "vercel.rollback", "attempt") in audit(world), timeout=20,
               message="the rollback call going out")
    kill9(leader.process)  # the call is in flight; nobody will hear its answer
    # The other worker takes the leader lock and the execution lease once they run out (30 s),
    # reads Vercel back, sees the rollback took effect, and does not send it again.
    _verified(world, root, timeout=75)
    _one_rollback(world)
    _exactly_once(world, "root", "notify", "progress", "verification.r0")


@pytest.mark.parametrize("fault", ["drop_after", "error_after", "error_before", "ratelimited"])
@pytest.mark.reliability("fault", "Slack 429, 503, 500 after applying, or a dropped connection after applying, "
                                  "on every post and update of a whole incident", trials=8)
def test_slack_faults_on_every_kind_of_post_and_update(database_url: str, redis_url: str, tmp_path: Path,
                                                       fault: str) -> None:
    world = make_world(database_url, redis_url, tmp_path)
    world.config_path.write_text(world.config_path.read_text().replace('monitor = ["5m", "10m", "15m"]',
                                                                       'monitor = ["2s", "4s"]'))
    cluster = Cluster(world)
    try:
        # Every post and update meets the fault once: those Slack applied (drop_after,
        # error_after) on each call, those it did not on every other call, so that each retry
        # of a post or update gets through.
        every = 1 if fault in ("drop_after", "error_after") else 2
        world.slack.script_fault("chat.postMessage", fault, times=40, every=every)
        world.slack.script_fault("chat.update", fault, times=40, every=every)
        a, b = cluster.client(0), cluster.client(1)
        a.command(ALICE, "code prod checkout is down", channel_id=CHANNEL)
        root = _root(world)
        wait_until(lambda: "notify" in _exactly_once(world), message="the team notified")  # Carol sees it
        b.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
        _verified(world, root)
        wait_until(lambda: any("Monitoring 2/2" in text_of(m) for m in world.slack.thread(CHANNEL, root["ts"])),
                   timeout=40, message="the second reminder")
        final = next(m for m in world.slack.thread(CHANNEL, root["ts"]) if "Monitoring 2/2" in text_of(m))
        a.click(CAROL, channel=CHANNEL, message_ts=final["ts"], action_id="resolve")
        view = wait_until(lambda: next((v for v in world.slack.views.values()
                                        if v.get("callback_id") == "resolve_modal"), None), message="the modal")
        b.submit_view(CAROL, view["id"], {
            "root_cause": {"value": {"type": "plain_text_input", "value": "bad cache"}},
            "lessons": {"value": {"type": "plain_text_input", "value": "canary it"}}})
        wait_until(lambda: "summary.link" in dict(_exactly_once(world)), timeout=40, message="the summary link")
        _exactly_once(world, "root", "notify", "progress", "verification.r0", "monitor.1", "monitor.2", "summary")
        assert len(world.vercel.calls_to("POST", ROLLBACK)) == 1
        # No update was lost: the root message and the progress message show where things ended.
        wait_until(lambda: "Resolved" in text_of(world.slack.message(CHANNEL, root["ts"])), timeout=20,
                   message="the root message showing the resolution")
        met = Counter(c["method"] for c in world.slack.calls if c["fault"] == fault)
        assert met["chat.postMessage"] >= 8 and met["chat.update"] >= 5, met  # every post met its fault
    finally:
        logs_clean(cluster.stop())
        world.close()
        world.slack.stop()
        world.vercel.stop()


@pytest.fixture
def own_servers(tmp_path: Path) -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    """A Postgres and a Redis of this test's own, so it can restart them."""
    pg = start_postgres()
    rd = start_redis()
    try:
        migrate(pg.url)
        yield pg, rd
    finally:
        rd.stop()
        pg.stop()


@pytest.mark.reliability("fault", "Redis flushed, then restarted empty, mid-incident; the request replayed")
def test_redis_flushed_and_restarted_empty_mid_incident(own_servers: tuple[EmbeddedServer, EmbeddedServer],
                                                        tmp_path: Path) -> None:
    pg, rd = own_servers
    world = make_world(pg.url, rd.url, tmp_path)
    cluster = Cluster(world)
    try:
        a, b = cluster.client(0), cluster.client(1)
        body = urllib.parse.urlencode({"command": "/rollback", "text": "code prod checkout", "user_id": ALICE,
                                       "channel_id": CHANNEL, "team_id": "T0SANDBOX", "trigger_id": "1.2.3",
                                       "response_url": world.slack.new_response_url(channel=CHANNEL, user=ALICE)}
                                      ).encode()
        ts = int(time.time())
        signature = a.sign(body, ts)
        assert a.post_raw(body, "application/x-www-form-urlencoded", timestamp=ts, signature=signature).status_code == 200
        root = _root(world)
        redis.Redis.from_url(rd.url).flushall()
        rd.restart()  # and empty again
        replay = b.post_raw(body, "application/x-www-form-urlencoded", timestamp=ts, signature=signature)
        assert replay.status_code == 200 and replay.text == ""  # Postgres remembered what Redis forgot
        assert b.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve").status_code == 200
        _verified(world, root, timeout=40)
        _one_rollback(world)
        _exactly_once(world, "root", "notify", "progress", "verification.r0")
        assert status(world, 2) is None  # the replay opened nothing
    finally:
        logs_clean(cluster.stop())
        world.close()
        world.slack.stop()
        world.vercel.stop()


@pytest.mark.reliability("fault", "Postgres restarted mid-incident, between the request and the approval")
def test_postgres_restarted_mid_incident(own_servers: tuple[EmbeddedServer, EmbeddedServer], tmp_path: Path) -> None:
    pg, rd = own_servers
    world = make_world(pg.url, rd.url, tmp_path)
    cluster = Cluster(world)
    try:
        a, b = cluster.client(0), cluster.client(1)
        a.command(ALICE, "code prod checkout is down", channel_id=CHANNEL)
        root = _root(world)
        wait_until(lambda: ("rollbot", "notify_team", "ok") in audit(world), message="the team notified")
        pg.restart(down_for=1.0)
        response = b.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
        assert response.status_code == 200
        _verified(world, root, timeout=40)
        _one_rollback(world)
        _exactly_once(world, "root", "notify", "progress", "verification.r0")
    finally:
        logs_clean(cluster.stop())
        world.close()
        world.slack.stop()
        world.vercel.stop()


@pytest.mark.parametrize("fault", ["429", "500-not-applied", "dropped-after-applying", "late-past-the-timeout"])
@pytest.mark.reliability("fault", "Vercel 429, 5xx, dropped connections and late application on the rollback call")
def test_vercel_faults_on_the_rollback_call(world: World, cluster: Cluster, fault: str) -> None:
    match fault:
        case "429":
            world.vercel.script_rate_limit(ROLLBACK, times=2, retry_after=1, method="POST")
        case "500-not-applied":
            world.vercel.script_error(ROLLBACK, status=500, method="POST")
        case "dropped-after-applying":
            world.vercel.script_drop(ROLLBACK, method="POST")
        case "late-past-the-timeout":
            world.vercel.script_late(ROLLBACK, delay=12.0, method="POST")  # the client gives up at 10 s
    a = cluster.client(0)
    a.command(ALICE, "code prod checkout is down", channel_id=CHANNEL)
    root = _root(world)
    a.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
    _verified(world, root, timeout=60)
    _one_rollback(world, sends={"429": 3, "500-not-applied": 2}.get(fault, 1))
    _exactly_once(world, "root", "notify", "progress", "verification.r0")
