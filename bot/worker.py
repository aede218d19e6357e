"""`rollbot worker`: the scheduler process. Due work lives in Postgres (claimed with
FOR UPDATE SKIP LOCKED); a Redis leader lock keeps an accidental second worker idle."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from apscheduler.schedulers.blocking import BlockingScheduler

from bot.bootstrap import Container
from handlers import monitoring

log = logging.getLogger("rollbot.worker")
LEADER = "worker"


class Worker:
    def __init__(self, container: Container, worker_id: str | None = None) -> None:
        self.container = container
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        tick = container.policy.scheduler.tick.total_seconds()
        self.tick_seconds = max(tick, 0.05)
        self._lock_ttl_ms = int(max(self.tick_seconds * 3, 30) * 1000)
        self._busy = threading.Lock()
        self.leading = False

    def run_once(self) -> int:
        """One tick. Returns how many due jobs ran (0 when another worker leads)."""
        if not self._busy.acquire(blocking=False):
            return 0  # the previous tick is still running
        try:
            leading = self.container.redis.acquire_leader(LEADER, self._lock_ttl_ms)
            if leading != self.leading:
                log.info("worker %s %s", self.id, "is the leader" if leading else "is standing by")
                self.leading = leading
            if not leading:
                return 0
            return monitoring.tick(self.container.services, self.id, self._renew)
        except Exception:
            log.exception("worker tick failed; retrying next tick")
            return 0
        finally:
            self._busy.release()

    def _renew(self) -> bool:
        self.leading = self.container.redis.acquire_leader(LEADER, self._lock_ttl_ms)
        return self.leading

    def run_forever(self) -> None:
        scheduler = BlockingScheduler(timezone="UTC")
        scheduler.add_job(self.run_once, "interval", seconds=self.tick_seconds, id="tick", max_instances=1,
                          coalesce=True, misfire_grace_time=None)
        log.info("worker %s ticking every %.1fs", self.id, self.tick_seconds)

        def stop(signum: int, _frame: object) -> None:
            log.info("worker %s stopping (signal %s)", self.id, signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        try:
            self.run_once()
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.container.redis.release_leader(LEADER)
            self.container.close()
