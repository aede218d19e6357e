"""Acted on before? The edge's replay filter (SPEC §7): Redis decides, Postgres when Redis cannot.

* Redis knows the key: a replay.
* Redis did not know it and has held every key for longer than the signature window (its epoch
  is older): a first delivery; its key is queued for Postgres (``ReplayLedger.remember``), which
  writes it off the request's path, in batches.
* Redis did not know it but cannot vouch (flushed, restarted empty, evicted, or unreachable):
  Postgres decides, synchronously (``ReplayLedger.first``).
* Neither answers: let it through (the acting paths keep their own guards) and log it.

When Redis starts a new epoch (a flush, a first start), the filter asks Postgres for the newest
key written before it: Redis vouches again once that key's window has passed, at once when there
is none (every key written since is in Redis too). This reads Postgres's clock against Redis's:
hosts whose clocks disagree by more than ``CLOCK_MARGIN`` seconds widen the gap below by that much.

One gap remains, and it is narrow: a replay that reaches Redis right after a flush, of a request
admitted less than one batch (50 ms) before the flush, may be let through, since its key may not
be in Postgres yet.
"""

from __future__ import annotations

import logging

from bot.edge import WINDOW_SECONDS
from integrations.pg_replay import ReplayLedger
from integrations.redis_state import RedisState

log = logging.getLogger("rollbot.edge")

CLOCK_MARGIN = 5  # seconds: Redis's and Postgres's clocks, and a batch of keys still on its way


class ReplayFilter:
    def __init__(self, redis: RedisState, ledger: ReplayLedger, window_seconds: int = WINDOW_SECONDS) -> None:
        self._redis = redis
        self._ledger = ledger
        self._window = window_seconds

    def seen(self, key: str) -> bool:
        return self.admit(key)[0]

    def admit(self, key: str, delivery: tuple[str, int] | None = None) -> tuple[bool, bool | None]:
        """``(a replay, first delivery)``: whether the request with this key was acted on
        before, and whether ``delivery`` (bot.delivery's key for a click or an event) is claimed
        for the first time, asked in the same Redis round trip (None when Redis did not answer,
        or when not asked: the listener then asks itself)."""
        answer = self._redis.first_request(key, self._window, delivery)
        if answer is None:
            return self._ledger_seen(key), None
        first, vouched, created, delivered = answer
        if created is not None and not self._backdate(created) and first:
            return False, delivered  # Postgres is unreachable: let it through, as below
        if not first:
            return True, delivered
        if vouched:
            self._ledger.remember(key)
            return False, delivered
        return self._ledger_seen(key), delivered

    def _ledger_seen(self, key: str) -> bool:
        try:
            return not self._ledger.first(key)
        except Exception as error:
            log.warning("replay check unavailable (%s); letting the request through", type(error).__name__)
            return False

    def _backdate(self, created: float) -> bool:
        """Redis vouches for nothing before ``created``; Postgres says since when it need not.
        False when Postgres could not be read."""
        try:
            newest = self._ledger.newest(before=created)
        except Exception as error:
            log.warning("replay check: could not read the ledger (%s); Redis vouches in %d s, and this "
                        "request is let through", type(error).__name__, self._window)
            return False
        since = 0 if newest is None else int(newest) + 1 + CLOCK_MARGIN
        if since < created:
            self._redis.backdate_epoch(created, since)
        return True
