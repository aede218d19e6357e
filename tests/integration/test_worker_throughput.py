"""The worker runs independent due jobs side by side on a bounded pool, with no per-tick cap:
200 monitoring reminders due at once, in 200 channels, all go out in one pass."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta

import psycopg

from bot.worker import DEFAULT_CONCURRENCY
from handlers import approvals, monitoring
from handlers.commands import Rollback
from handlers.execution import execute
from handlers.requests import request_rollback
from sandbox.team import ALICE, CAROL
from tests.world import World, wait_until

COUNT = 200


def _monitored_incidents(world: World, count: int) -> list[int]:
    """One real incident, verified and monitored, then ``count - 1`` copies of it, each in its own
    channel, with the first reminder of every one of them due now."""
    svc = world.container().services
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "throughput"))
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    execute(svc, incident.id)
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'incidents' AND column_name "
            "NOT IN ('id', 'channel', 'root_ts')")]
        listed = ", ".join(columns)
        for n in range(2, count + 1):
            conn.execute(f"INSERT INTO incidents (channel, root_ts, {listed}) SELECT %s, %s, {listed} "
                         "FROM incidents WHERE id = %s", (f"C{n:07d}", f"1700000000.{n:06d}", incident.id))
        conn.execute("UPDATE due_jobs SET status = 'cancelled' WHERE kind = 'monitor'")
        conn.execute("INSERT INTO due_jobs (incident_id, kind, due_at, payload) SELECT id, 'monitor', now(), "
                     """'{"index": 1, "total": 3}' FROM incidents""")
    return [incident.id]


def test_two_hundred_reminders_due_together_go_out_in_one_pass_side_by_side(world: World) -> None:
    _monitored_incidents(world, COUNT)
    world.advance(timedelta(seconds=1))
    running, peak, lock = 0, 0, threading.Lock()
    real_process = monitoring.process

    def counting(svc, job, *rest):  # noqa: ANN001, ANN002, ANN202 - wraps the real job runner
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return real_process(svc, job, *rest)
        finally:
            with lock:
                running -= 1

    monitoring.process = counting
    try:
        ran = world.worker().run_once()
    finally:
        monitoring.process = real_process
    reminders = [m for m in world.slack.messages() if "Monitoring 1/3" in json.dumps(m.get("blocks"))]
    assert ran == COUNT and len(reminders) == COUNT
    assert len({m["channel"] for m in reminders}) == COUNT
    # Side by side, bounded by the pool: a serial worker would show 1. How long they take is the
    # benchmark's business (timed tests flake on a loaded machine).
    assert 8 < peak <= DEFAULT_CONCURRENCY, f"jobs ran {peak} at a time"


def test_upkeep_never_holds_the_slots_a_due_execution_needs(world: World, monkeypatch) -> None:  # noqa: ANN001
    """Hundreds of environments mean hundreds of upkeep tasks a tick; however slow they are, at
    most a quarter of the pool runs them, so a deciding approval's execution starts at once."""
    release = threading.Event()
    started: list[str] = []

    def slow(key: str) -> None:
        started.append(key)
        release.wait(30)

    tasks = [(f"slow:{n}", lambda n=n: slow(f"slow:{n}")) for n in range(3 * DEFAULT_CONCURRENCY)]
    monkeypatch.setattr(monitoring, "maintenance", lambda svc: tasks)
    worker = world.worker()
    svc = world.container().services
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "upkeep"))
    try:
        assert worker._lead()
        worker._upkeep()
        worker._upkeep()  # a second tick while the first one's tasks still run adds none beyond the cap
        assert len(worker._maintaining) == DEFAULT_CONCURRENCY // 4
        approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
        assert worker.dispatch() == 1  # the execution found a free slot
        wait_until(lambda: svc.store.get(incident.id).status.value != "executing", message="the execution to finish")
    finally:
        release.set()
    assert len(started) == DEFAULT_CONCURRENCY // 4


def test_upkeep_that_waited_goes_first_so_the_last_task_is_never_starved(world: World, monkeypatch) -> None:  # noqa: ANN001
    """With more upkeep tasks than its slots, each tick starts the ones that waited longest: the
    drill reminders, listed after every environment's snapshot, still run on the next ticks."""
    ran: list[str] = []
    gate = threading.Event()  # each tick's tasks run until the tick is over, as slow ones do

    def task(key: str) -> None:
        ran.append(key)
        gate.wait(30)

    tasks = [(f"task:{n}", lambda n=n: task(f"task:{n}")) for n in range(DEFAULT_CONCURRENCY)]
    tasks.append(("drills:remind", lambda: task("drills:remind")))
    monkeypatch.setattr(monitoring, "maintenance", lambda svc: tasks)
    worker = world.worker()
    assert worker._lead()
    slots = DEFAULT_CONCURRENCY // 4
    ticks = 0
    while "drills:remind" not in ran:
        assert ticks < len(tasks), f"the last task never ran in {ticks} ticks: {ran}"
        gate.clear()
        started, _ = worker._upkeep()
        assert len(started) == slots
        gate.set()
        wait_until(lambda: not worker._maintaining, message="the tick's upkeep to finish")
        ticks += 1
    assert ticks == -(-len(tasks) // slots)
    counts = Counter(ran)  # every task once before any ran twice (the last tick fills up with the oldest)
    assert set(counts) == {key for key, _ in tasks}
    assert sorted(counts.values()) == [1] * (len(tasks) - (ticks * slots - len(tasks))) + [2] * (ticks * slots - len(tasks))


def test_one_pass_runs_every_upkeep_task_even_beyond_its_slots(world: World, monkeypatch) -> None:  # noqa: ANN001
    """``run_once`` (the dev console, tests) runs everything due to the end: upkeep tasks that had
    to wait for a slot run later in the same pass, each once."""
    ran: list[str] = []
    tasks = [(f"task:{n}", lambda n=n: ran.append(f"task:{n}")) for n in range(2 * DEFAULT_CONCURRENCY)]
    monkeypatch.setattr(monitoring, "maintenance", lambda svc: tasks)
    world.worker().run_once()
    assert sorted(ran) == sorted(key for key, _ in tasks)
