"""Postgres's copy of the signed Slack requests already acted on (table ``seen_requests``).

Redis decides replays while it can vouch for the whole 5-minute window (bot.replay); this table
is what decides when it cannot (flushed, restarted empty, down). So every admitted request's key
is written here, but off the request's path: :meth:`ReplayLedger.remember` queues the key and a
background thread writes what queued in one statement every ``flush_every`` seconds. When Redis
cannot vouch, :meth:`ReplayLedger.first` inserts synchronously and its answer decides.

    ledger = ReplayLedger(pool)
    ledger.remember(key)        # Redis admitted it: written within ~50 ms
    ledger.first(key)           # Redis cannot vouch: True the first time, atomically
    ledger.close()              # writes what is queued, then stops the thread

The same thread deletes keys older than ``KEEP`` once a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from psycopg_pool import ConnectionPool

log = logging.getLogger("rollbot.replay")

KEEP = "10 minutes"  # twice Slack's signature window: older keys cannot be replayed anyway
SWEEP_EVERY = 60.0
WAIT = 0.5  # seconds for a connection on the request's path: with the listener's own 2 s, inside Slack's 3 s
MAX_QUEUED = 100_000  # keys a long Postgres outage may hold; beyond it the oldest are dropped (logged)


class ReplayLedger:
    def __init__(self, pool: ConnectionPool[Any], *, flush_every: float = 0.05) -> None:
        self._pool = pool
        self._flush_every = flush_every
        self._queued: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._swept = 0.0

    def first(self, key: str) -> bool:
        """True the first time ``key`` is written (atomic across processes)."""
        with self._pool.connection(timeout=WAIT) as conn:
            first = conn.execute("INSERT INTO seen_requests (key) VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1",
                                 (key,)).fetchone() is not None
        self._start()  # the batch thread sweeps old keys, also when Redis never vouches
        return first

    def newest(self, before: float) -> float | None:
        """When the newest key written before ``before`` was written (Unix seconds, both), or
        None when there is none."""
        with self._pool.connection(timeout=WAIT) as conn:
            row = conn.execute("SELECT extract(epoch FROM max(seen_at))::float8 AS newest FROM seen_requests "
                               "WHERE seen_at < to_timestamp(%s)", (before,)).fetchone()
        value = row["newest"] if isinstance(row, dict) else (row[0] if row else None)
        return float(value) if value is not None else None

    def remember(self, key: str) -> None:
        """Queue ``key`` for the next batch (started on first use, so a process that never admits
        a request runs no thread)."""
        with self._lock:
            if self._stopping:
                return
            self._queued.append(key)
            if len(self._queued) > MAX_QUEUED:
                log.warning("replay ledger: Postgres has not taken keys for a while; dropping the oldest")
                del self._queued[: len(self._queued) - MAX_QUEUED]
            self._start_locked()

    def _start(self) -> None:
        with self._lock:
            if not self._stopping:
                self._start_locked()

    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rollbot-replay-ledger", daemon=True)
            self._thread.start()

    def flush(self) -> int:
        """Write what is queued now, in one statement; the number of keys written (0 when Postgres
        did not take them: they stay queued for the next try)."""
        with self._lock:
            keys, self._queued = self._queued, []
        if not keys:
            return 0
        try:
            with self._pool.connection() as conn:
                conn.execute("INSERT INTO seen_requests (key) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                             (keys,))
        except Exception as error:
            log.warning("replay ledger: could not write %d key(s) (%s); retrying", len(keys), type(error).__name__)
            with self._lock:
                self._queued[:0] = keys
            return 0
        return len(keys)

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_every)
            stopping = self._stopping
            if self.flush() == 0 and self._queued and not stopping:
                time.sleep(min(1.0, self._flush_every * 10))  # Postgres refused: do not spin
            if stopping:
                return
            self._sweep_now_and_then()  # after the keys Redis admitted are written

    def _sweep_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        try:
            with self._pool.connection() as conn:
                conn.execute(f"DELETE FROM seen_requests WHERE seen_at < now() - interval '{KEEP}'")
        except Exception as error:
            log.warning("replay ledger: could not sweep old keys (%s)", type(error).__name__)
