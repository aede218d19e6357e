"""Redis: live thread tracking, inbound de-duplication, the leader lock, a small cache.

Everything here is rebuildable: when Redis is flushed or down, callers fall back to Postgres
(the source of truth) and the guarantees hold, only slower.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable

import redis
from redis.exceptions import RedisError

log = logging.getLogger("rollbot.redis")
PREFIX = "rollbot:"

# Release/extend only a lock we still own (compare-and-delete / compare-and-expire).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_EXTEND = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)


# Generic cell rate algorithm: one key per paced resource holds the "theoretical arrival time".
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - tolerance > now then return tat - tolerance - now end
redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now + 1000)
return 0
"""


# The replay filter: remember a request's key, and say whether Redis vouches for the last
# ``window`` seconds. Its epoch key (never expiring) is written when Redis has none, right after a
# flush, a restart with nothing on disk or an eviction: "now" (vouching for nothing older), which
# the caller may move back (``backdate_epoch``) to when the keys Redis lost had all expired. A
# third key, when given, is a click's or an event's delivery key (bot.delivery), claimed as
# ``first_delivery`` claims it: 1 the first time, 0 after, -1 when not asked.
_FIRST_REQUEST = """
local first = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1])
local epoch = tonumber(redis.call('GET', KEYS[2]))
local created = ''
if not epoch then
  redis.call('SET', KEYS[2], now)
  epoch = now
  created = time[1] .. '.' .. string.format('%06d', tonumber(time[2]))
end
local delivery = -1
if KEYS[3] then
  delivery = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) and 1 or 0
end
return {first and 1 or 0, (now - epoch > tonumber(ARGV[2])) and 1 or 0, created, delivery}
"""
_BACKDATE = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2]) return 1 end return 0"
EPOCH_KEY = PREFIX + "seen:epoch"


class RedisState:
    """Implements ``handlers.ports.LiveState`` plus the worker's leader lock."""

    def __init__(self, url: str, *, rebuild: Callable[[int], dict[str, str] | None] | None = None) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
        self._rebuild = rebuild
        self._token = uuid.uuid4().hex
        self._first_request = self.client.register_script(_FIRST_REQUEST)

    def ping(self) -> bool:
        return bool(self.client.ping())

    def first_delivery(self, key: str, ttl_seconds: int = 600) -> bool:
        """True the first time ``key`` is seen within the TTL (a fast filter, never the only guard)."""
        try:
            return bool(self.client.set(PREFIX + "seen:" + key, "1", nx=True, ex=ttl_seconds))
        except RedisError:
            log.warning("redis unavailable for de-duplication; relying on Postgres")
            return True

    def first_request(self, key: str, window_seconds: int, delivery: tuple[str, int] | None = None
                      ) -> tuple[bool, bool, float | None, bool | None] | None:
        """``(first time seen, Redis vouches, when it just created its epoch or None, first
        delivery)`` for a signed request's key, in one round trip; None when Redis is
        unavailable. Redis vouches when its epoch is older than ``window_seconds``: then a key it
        does not know was never seen. ``delivery`` (a key and its TTL, bot.delivery) is claimed as
        ``first_delivery`` would, in the same round trip; its answer is None when not asked."""
        keys = [PREFIX + "seen:request:" + key, EPOCH_KEY]
        args: list[int] = [window_seconds + 60, window_seconds]
        if delivery is not None:
            keys.append(PREFIX + "seen:" + delivery[0])
            args.append(delivery[1])
        try:
            first, vouched, created, claimed = self._first_request(keys=keys, args=args)
        except RedisError:
            log.warning("redis unavailable for the replay filter; asking Postgres")
            return None
        return bool(first), bool(vouched), float(created) if created else None, None if claimed < 0 else bool(claimed)

    def backdate_epoch(self, created: float, to: int) -> bool:
        """Move the epoch Redis created at ``created`` back to ``to``, unless it changed since."""
        try:
            return bool(self.client.eval(_BACKDATE, 1, EPOCH_KEY, int(created), to))
        except RedisError:
            return False

    def thread_refs(self, incident_id: int) -> dict[str, str] | None:
        """Where incident ``incident_id`` lives in Slack; rebuilt from Postgres on a miss."""
        key = f"{PREFIX}thread:{incident_id}"
        try:
            cached = self.client.hgetall(key)
        except RedisError:
            cached = {}
        if cached:  # decode_responses=True: keys and values are str
            return {str(k): str(v) for k, v in cached.items()}
        refs = self._rebuild(incident_id) if self._rebuild else None
        if refs:
            self.remember_thread(incident_id, refs)
        return refs

    def remember_thread(self, incident_id: int, refs: dict[str, str]) -> None:
        clean = {k: v for k, v in refs.items() if v}
        if not clean:
            return
        try:
            self.client.hset(f"{PREFIX}thread:{incident_id}", mapping=dict(clean.items()))
            self.client.expire(f"{PREFIX}thread:{incident_id}", 7 * 86400)
        except RedisError:
            log.warning("redis unavailable; thread refs stay in Postgres only")

    def cache_get(self, key: str) -> object | None:
        try:
            raw = self.client.get(PREFIX + "cache:" + key)
        except RedisError:
            return None
        return json.loads(raw) if raw else None

    def cache_set(self, key: str, value: object, ttl_seconds: int) -> None:
        try:
            self.client.set(PREFIX + "cache:" + key, json.dumps(value), ex=ttl_seconds)
        except RedisError:
            pass

    def throttle(self, key: str, per_second: float, burst: int = 1) -> float:
        """Outbound pacing shared by every process: 0 when a call may go now, else how many
        seconds to wait. A token bucket (GCRA) on Redis's clock: ``per_second`` on average, up to
        ``burst`` at once after a quiet spell."""
        interval_ms = max(1, int(1000 / per_second))
        try:
            wait_ms = int(self.client.eval(_GCRA, 1, f"{PREFIX}pace:{key}", interval_ms, (burst - 1) * interval_ms))
        except RedisError:
            return 0.0  # no shared pacing without Redis; Slack's own 429s are still honoured
        return wait_ms / 1000

    # -- leader lock -------------------------------------------------------------------------

    def acquire_leader(self, name: str, ttl_ms: int) -> bool:
        """Become (or stay) the leader for ``name``. Only the holder's token can extend it."""
        key = f"{PREFIX}leader:{name}"
        try:
            if self.client.set(key, self._token, nx=True, px=ttl_ms):
                return True
            return bool(self.client.eval(_EXTEND, 1, key, self._token, ttl_ms))
        except RedisError:
            # Fail open: claims (SKIP LOCKED), execution leases and the reminders' step guards in
            # Postgres keep concurrent workers safe; the lock only keeps a second one idle.
            log.warning("redis unavailable; working without the leader lock")
            return True

    def release_leader(self, name: str) -> None:
        try:
            self.client.eval(_RELEASE, 1, f"{PREFIX}leader:{name}", self._token)
        except RedisError:
            pass

    def close(self) -> None:
        self.client.close()
