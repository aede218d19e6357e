"""The edge's replay filter on real Redis and Postgres: Redis decides while it can vouch for the
whole signature window; Postgres decides when it cannot (flushed, restarted empty, down)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from bot.replay import ReplayFilter
from integrations.pg_replay import ReplayLedger
from integrations.redis_state import PREFIX, RedisState

WINDOW = 300


@pytest.fixture
def ledger(pool: ConnectionPool[Connection[DictRow]]) -> Iterator[ReplayLedger]:
    made = ReplayLedger(pool, flush_every=0.02)
    yield made
    made.close()


def _in_postgres(pool: ConnectionPool[Connection[DictRow]], key: str) -> bool:
    with pool.connection() as conn:
        return conn.execute("SELECT 1 FROM seen_requests WHERE key = %s", (key,)).fetchone() is not None


def _age_epoch(redis_url: str, seconds: int) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(PREFIX + "seen:epoch", int(client.time()[0]) - seconds)


def _until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_while_redis_vouches_it_decides_and_postgres_learns_the_key_off_the_path(
        redis_url: str, pool: ConnectionPool[Connection[DictRow]], ledger: ReplayLedger) -> None:
    live = RedisState(redis_url)
    _age_epoch(redis_url, WINDOW + 1)
    replay = ReplayFilter(live, ReplayLedger(pool, flush_every=3600))  # a ledger that never flushes by itself
    assert replay.seen("k1") is False
    assert not _in_postgres(pool, "k1")  # nothing written on the request's path
    assert replay.seen("k1") is True  # Redis alone caught the replay
    replay = ReplayFilter(live, ledger)
    assert replay.seen("k2") is False
    _until(lambda: _in_postgres(pool, "k2"))  # the batch wrote it
    live.close()


def test_after_a_flush_postgres_decides_and_catches_the_replay(
        redis_url: str, pool: ConnectionPool[Connection[DictRow]], ledger: ReplayLedger) -> None:
    live = RedisState(redis_url)
    _age_epoch(redis_url, WINDOW + 1)
    replay = ReplayFilter(live, ledger)
    assert replay.seen("before-flush") is False
    _until(lambda: _in_postgres(pool, "before-flush"))
    redis.Redis.from_url(redis_url).flushall()
    assert replay.seen("before-flush") is True  # Redis forgot it; Postgres did not
    assert replay.seen("after-flush") is False
    assert _in_postgres(pool, "after-flush")  # decided by Postgres, synchronously
    assert replay.seen("after-flush") is True
    ages = redis.Redis.from_url(redis_url)
    assert int(ages.time()[0]) - int(ages.get(PREFIX + "seen:epoch")) < 5  # a new epoch: no vouching for 5 minutes
    live.close()


def test_with_redis_down_postgres_decides(pool: ConnectionPool[Connection[DictRow]], ledger: ReplayLedger) -> None:
    down = RedisState("redis://127.0.0.1:1/0")  # nothing listens there
    replay = ReplayFilter(down, ledger)
    assert replay.seen("k") is False and _in_postgres(pool, "k")
    assert replay.seen("k") is True
    down.close()


def test_with_both_down_the_request_is_let_through() -> None:
    down = RedisState("redis://127.0.0.1:1/0")
    broken = ConnectionPool("postgresql://127.0.0.1:1/none", min_size=0, max_size=1, open=True, timeout=0.5)
    try:
        assert ReplayFilter(down, ReplayLedger(broken)).seen("k") is False
    finally:
        broken.close()
        down.close()


def test_keys_that_postgres_refused_are_written_later_and_close_writes_what_is_queued(
        pool: ConnectionPool[Connection[DictRow]]) -> None:
    ledger = ReplayLedger(pool, flush_every=3600)
    ledger.remember("late-1")
    ledger.remember("late-2")
    assert not _in_postgres(pool, "late-1")
    ledger.close()
    assert _in_postgres(pool, "late-1") and _in_postgres(pool, "late-2")


def test_a_new_epoch_vouches_once_every_key_postgres_holds_is_past_its_window(
        redis_url: str, pool: ConnectionPool[Connection[DictRow]]) -> None:
    """A first start (no keys in Postgres): Redis vouches from its second request on. A restart
    with keys from two minutes ago: not until those have left the window."""
    live = RedisState(redis_url)
    quiet = ReplayLedger(pool, flush_every=3600)
    replay = ReplayFilter(live, quiet)
    assert replay.seen("first-ever") is False and _in_postgres(pool, "first-ever")  # no epoch yet: Postgres
    assert replay.seen("second") is False and not _in_postgres(pool, "second")  # backdated: Redis vouches
    with pool.connection() as conn:
        conn.execute("UPDATE seen_requests SET seen_at = now() - interval '2 minutes'")
    redis.Redis.from_url(redis_url).flushall()
    assert replay.seen("after-restart") is False and _in_postgres(pool, "after-restart")
    assert replay.seen("still-young") is False and _in_postgres(pool, "still-young")  # keys 2 min old: no vouching
    quiet.close()
    live.close()


def test_a_burst_on_a_new_epoch_does_not_keep_redis_from_vouching(
        redis_url: str, pool: ConnectionPool[Connection[DictRow]]) -> None:
    """The keys Postgres takes while the epoch is new are in Redis too: only keys from before the
    epoch count, so a first burst does not hold off vouching for five minutes."""
    from concurrent.futures import ThreadPoolExecutor

    live = RedisState(redis_url)
    quiet = ReplayLedger(pool, flush_every=3600)
    replay = ReplayFilter(live, quiet)
    with ThreadPoolExecutor(16) as burst:
        assert not any(burst.map(replay.seen, [f"burst-{n}" for n in range(64)]))
    assert replay.seen("after-burst") is False and not _in_postgres(pool, "after-burst")
    quiet.close()
    live.close()


def test_old_keys_are_swept_by_the_batch_thread_not_on_the_request_path(
        pool: ConnectionPool[Connection[DictRow]], ledger: ReplayLedger) -> None:
    with pool.connection() as conn:
        conn.execute("INSERT INTO seen_requests (key, seen_at) VALUES ('old', now() - interval '11 minutes')")
    ledger._swept = time.monotonic()  # a sweep just ran: first() below must not sweep on its own
    assert ledger.first("new") is True
    assert _in_postgres(pool, "old")  # the request's path only inserted
    ledger._swept = 0.0  # the minute has passed
    _until(lambda: not _in_postgres(pool, "old"))  # the thread first() started swept it
    assert _in_postgres(pool, "new")


def test_a_clicks_delivery_key_is_claimed_in_the_same_round_trip_and_shared_with_first_delivery(
        redis_url: str, ledger: ReplayLedger) -> None:
    live = RedisState(redis_url)
    _age_epoch(redis_url, WINDOW + 1)
    replay = ReplayFilter(live, ledger)
    click = ("action:U1:approve:1700000000.1", 600)
    assert replay.admit("signed-once", click) == (False, True)
    assert replay.admit("signed-again", click) == (False, False)  # the same click, delivered again
    assert replay.admit("signed-again", click) == (True, False)  # the same bytes: a replay
    assert replay.admit("no-delivery-key") == (False, None)  # not asked: the listener asks itself
    assert live.first_delivery(click[0]) is False  # Socket Mode's listener sees the same key
    assert 590 <= redis.Redis.from_url(redis_url).ttl(PREFIX + "seen:" + click[0]) <= 600
    live.close()


def test_with_redis_down_the_delivery_is_left_to_the_listener(ledger: ReplayLedger) -> None:
    down = RedisState("redis://127.0.0.1:1/0")
    assert ReplayFilter(down, ledger).admit("k-down", ("event:Ev1", 3600)) == (False, None)
    down.close()
