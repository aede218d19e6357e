"""`rollbot worker`: executions, reminders, expiries and summaries, from rows in Postgres.

Due work is claimed with ``FOR UPDATE SKIP LOCKED`` and run on bounded pools, so independent
jobs (200 reminders in 200 channels, an execution next to them) run side by side. Executions have
a pool of their own, so an approved rollback never waits for a slot behind reminders and posts;
until its change goes out, the rest of the worker's work gives way to it (handlers.precedence). The worker is
woken at once by Postgres ``LISTEN/NOTIFY`` when work is written; an APScheduler tick is the
fallback and runs the housekeeping (orphaned requests, executions whose lease ran out). A Redis
leader lock keeps an accidental second worker idle; Postgres guards keep it safe either way.
"""

from __future__ import annotations

import contextvars
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import psycopg
import redis
from apscheduler.schedulers.background import BackgroundScheduler
from psycopg_pool import PoolTimeout

from bot.bootstrap import Container
from bot.metrics import JOBS_CLAIMED
from bot.settings import secret
from handlers import monitoring, takeover
from handlers.services import Services
from handlers.store import DueJob
from integrations.pg_wakeups import JobWakeups

log = logging.getLogger("rollbot.worker")
LEADER = "worker"
DEFAULT_CONCURRENCY = 64  # jobs mostly wait: on Slack, on Vercel, on a channel's posting pace
WORKER_POOL = 16  # Postgres connections, taken per query (no job holds one while it waits)
EXECUTIONS_PER_SLOT = 2  # executions have a pool of their own, this many times the jobs', never filled by them


class Worker:
    def __init__(self, container: Container, worker_id: str | None = None, *,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.container = container
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        tick = container.policy.scheduler.tick.total_seconds()
        self.tick_seconds = max(tick, 0.05)
        self._lock_ttl_ms = int(max(self.tick_seconds * 3, 30) * 1000)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rollbot-job")
        self._execution_slots = concurrency * EXECUTIONS_PER_SLOT
        self._executions = ThreadPoolExecutor(max_workers=self._execution_slots, thread_name_prefix="rollbot-execute")
        self._concurrency = concurrency
        self._running: set[Future[object]] = set()
        self._executing: set[Future[object]] = set()  # of _running, those on the executions' pool
        self._resuming: set[int] = set()  # incidents being taken over by this worker
        self._maintaining: set[str] = set()  # upkeep tasks running now
        self._upkept: dict[str, float] = {}  # when each upkeep task last started (monotonic)
        self._running_lock = threading.Lock()
        self._wake = threading.Event()
        self._busy = threading.Lock()  # one dispatcher at a time (tick, wake-up, a test's run_once)
        self.leading = False

    # -- one pass ----------------------------------------------------------------------------

    def _lead(self) -> bool:
        leading = self.container.redis.acquire_leader(LEADER, self._lock_ttl_ms)
        if leading != self.leading:
            log.info("worker %s %s", self.id, "is the leader" if leading else "is standing by")
            self.leading = leading
        return leading

    def dispatch(self) -> int:
        """Claim as many due jobs as the pools have free slots and start them; returns how many.
        Does not wait for them (a long execution must not hold up the reminders)."""
        svc = self.container.services
        started = 0
        while True:
            with self._running_lock:
                executing = len(self._executing)
                free = self._concurrency - (len(self._running) - executing)
                free_executions = self._execution_slots - executing
            if (free <= 0 and free_executions <= 0) or not self._lead():
                return started
            jobs = svc.store.claim_due(svc.clock.now(), self.id, limit=max(free, 0),
                                       executions=max(free_executions, 0))
            if not jobs:
                return started
            for job in jobs:
                JOBS_CLAIMED.labels(kind=job.kind).inc()
                if job.kind == "execute":
                    self._submit(monitoring.process, svc, job, passing, execution=True)
                else:
                    self._submit(_after_executions, svc, job)
            started += len(jobs)

    def _submit(self, fn: Callable[..., object], *args: object, execution: bool = False) -> None:
        # A fresh context per job: what it binds for the logs (its incident) ends with it.
        pool = self._executions if execution else self._pool
        future = pool.submit(contextvars.Context().run, fn, *args)
        with self._running_lock:
            self._running.add(future)
            if execution:
                self._executing.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[object]) -> None:
        with self._running_lock:
            self._running.discard(future)
            self._executing.discard(future)
        self._wake.set()  # a free slot: claim more if more is due

    def _housekeeping(self) -> tuple[set[str], bool]:
        """Orphans closed; executions whose lease ran out taken over on the pool, each once; the
        kinds' upkeep (what it started, and whether some had to wait for a slot)."""
        upkeep = self._upkeep()
        for incident_id in monitoring.housekeeping(self.container.services):
            with self._running_lock:
                if incident_id in self._resuming:
                    continue
                self._resuming.add(incident_id)
            self._submit(self._resume, incident_id, execution=True)
        return upkeep

    def _upkeep(self, skip: frozenset[str] | set[str] = frozenset()) -> tuple[set[str], bool]:
        """The standing work (scheduled env-var snapshots, drill and review reminders) on the
        pool, each task once at a time and at most a quarter of the pool at once: with hundreds
        of environments, upkeep waits for the next tick rather than holding every slot while
        executions are due. The tasks that waited longest go first, so none is starved. Returns
        the keys started and whether some had to wait."""
        slots = max(1, self._concurrency // 4)
        tasks = sorted(monitoring.maintenance(self.container.services),
                       key=lambda item: self._upkept.get(item[0], 0.0))
        started: set[str] = set()
        for key, task in tasks:
            if key in skip:
                continue
            with self._running_lock:
                if key in self._maintaining:
                    continue
                if len(self._maintaining) >= slots:
                    return started, True
                self._maintaining.add(key)
                self._upkept[key] = time.monotonic()
            self._submit(self._maintain, key, task)
            started.add(key)
        return started, False

    def _maintain(self, key: str, task: Callable[[], None]) -> None:
        try:
            self.container.services.precedence.give_way()  # standing work waits for executions' changes too
            task()
        finally:
            with self._running_lock:
                self._maintaining.discard(key)

    def _resume(self, incident_id: int) -> None:
        try:
            takeover.resume(self.container.services, incident_id)
        finally:
            with self._running_lock:
                self._resuming.discard(incident_id)

    def run_once(self) -> int:
        """Everything due now, to the end, then the housekeeping. Returns how many jobs ran
        (0 when another worker leads). For the dev console and tests; the service loops."""
        with self._busy:
            ran = 0
            try:
                housekept = False
                upkept: set[str] = set()
                waiting = False  # upkeep tasks that had no slot yet: this pass runs them too
                while True:
                    started = self.dispatch()
                    if not started and self.leading and (not housekept or waiting):
                        more, waiting = self._upkeep(upkept) if housekept else self._housekeeping()
                        upkept |= more
                        housekept = True
                    with self._running_lock:
                        running = set(self._running)
                    if not started and not running and not waiting:
                        break
                    ran += started
                    wait(running)
            except Exception as error:
                _failed("worker pass", error)
            return ran

    def _tick(self) -> None:
        """The scheduler's fallback: housekeeping, and anything a lost wake-up left due."""
        with self._busy:
            try:
                self.dispatch()
                if self.leading:
                    self._housekeeping()
            except Exception as error:
                _failed("worker tick", error)

    # -- the service -------------------------------------------------------------------------

    def run_forever(self) -> None:
        stop = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            log.info("worker %s stopping (signal %s)", self.id, signum)
            stop.set()
            self._wake.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(self._tick, "interval", seconds=self.tick_seconds, id="tick", max_instances=1,
                          coalesce=True, misfire_grace_time=None)
        wakeups = JobWakeups(secret(self.container.settings.database_url), self._wake.set)
        log.info("worker %s: %d at a time, woken by NOTIFY, ticking every %.1fs", self.id, self._concurrency,
                 self.tick_seconds)
        try:
            wakeups.start()
            scheduler.start()
            self._tick()
            while not stop.is_set():
                self._wake.wait(self.tick_seconds)
                self._wake.clear()
                if stop.is_set():
                    break
                with self._busy:
                    try:
                        self.dispatch()
                    except Exception as error:
                        _failed("dispatching due work", error)
                        stop.wait(1.0)
        finally:
            scheduler.shutdown(wait=False)
            wakeups.stop()
            self.close()

    def close(self) -> None:
        """Let running jobs finish (their leases cover a hard stop), then release everything."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._executions.shutdown(wait=True, cancel_futures=True)
        self.container.redis.release_leader(LEADER)
        self.container.close()


def lower_priority(nice: int) -> None:
    """Run the worker ``nice`` steps below the processes it shares a host with (``rollbot web``
    above all): under a burst, acknowledging Slack within 3 s matters more than how soon the
    background work after it starts. Its own Postgres and Slack calls keep their timeouts."""
    if nice <= 0 or not hasattr(os, "nice"):
        return
    try:
        now = os.nice(nice)
    except OSError as error:
        log.warning("could not lower the worker's CPU priority (%s)", error)
        return
    log.info("worker runs at CPU priority nice %d (ROLLBOT_WORKER_NICE)", now)


def _after_executions(svc: Services, job: DueJob) -> str:
    """A job other than an execution: it starts once the executions on their way to a change
    have sent it (at most handlers.precedence.WINDOW later)."""
    svc.precedence.give_way()
    return monitoring.process(svc, job, passing)


def passing(error: Exception) -> bool:
    """A database or Redis that is restarting or down: expected, and it passes."""
    return isinstance(error, (psycopg.OperationalError, PoolTimeout, redis.ConnectionError, redis.TimeoutError))


def _failed(what: str, error: Exception) -> None:
    """A pass that failed is retried; a database or Redis that is restarting or down is a
    one-line warning (it is expected, and it passes), anything else is logged in full."""
    if passing(error):
        log.warning("%s failed, retrying: %s unreachable (%s)", what,
                    "Redis" if isinstance(error, redis.RedisError) else "the database",
                    str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__)
    else:
        log.exception("%s failed; retrying", what)
