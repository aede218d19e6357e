"""The Postgres store's guarantees, on a real server."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from handlers.code import CodeKind
from handlers.kind import KindRegistry
from integrations.pg_store import PostgresStore
from integrations.schema import migrate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(database_url: str):
    s = PostgresStore(database_url, KindRegistry([CodeKind(provider=None)]).load_plan, max_size=8)  # type: ignore[arg-type]
    yield s
    s.close()


def test_migrate_is_idempotent_and_safe_to_run_concurrently(database_url: str, postgres_server_url: str) -> None:
    assert migrate(database_url) == []  # the test database is a migrated copy already
    fresh = postgres_server_url.rsplit("/", 1)[0] + "/rollbot_migrate_race"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS rollbot_migrate_race")
        conn.execute("CREATE DATABASE rollbot_migrate_race")
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(fresh))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from integrations.schema import migration_files

    assert sorted(len(r) for r in results) == [0, 0, len(migration_files())]  # one run applied them all
    cli = subprocess.run([sys.executable, "-m", "bot.cli", "migrate"], env={"DATABASE_URL": fresh, "PATH": ""},
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "schema is up to date" in cli.stdout, cli.stderr
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE rollbot_migrate_race WITH (FORCE)")


def test_audit_log_is_append_only(store: PostgresStore, database_url: str) -> None:
    store.audit(None, "U1", "command", "refused", {"reason": "nope"}, T0)
    with psycopg.connect(database_url) as conn:
        for statement in ("UPDATE audit_log SET outcome = 'ok'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute("SELECT outcome FROM audit_log").fetchall() == [("refused",)]


def test_due_jobs_are_claimed_once_across_concurrent_workers(store: PostgresStore) -> None:
    for n in range(40):
        store.schedule(None, "monitor", T0 + timedelta(seconds=n), {"n": n})
    store.schedule(None, "monitor", T0 + timedelta(hours=1), {"n": "later"})
    claimed: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claim(worker: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while jobs := store.claim_due(T0 + timedelta(minutes=1), worker, limit=3):
            mine += [j.id for j in jobs]
        claimed.append(mine)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [job for mine in claimed for job in mine]
    assert len(every) == 40 and len(set(every)) == 40  # each due job exactly once, the later one not yet


def test_a_crashed_workers_job_is_reclaimed_after_its_lease(store: PostgresStore) -> None:
    store.schedule(None, "monitor", T0, {})
    [job] = store.claim_due(T0, "crashed")
    assert store.claim_due(T0 + timedelta(minutes=1), "other") == []  # leased
    [again] = store.claim_due(T0 + timedelta(minutes=6), "other")
    assert again.id == job.id
    store.finish_job(again.id, "reminded")
    assert store.claim_due(T0 + timedelta(hours=1), "other") == []


def test_the_execution_lease_fences_a_stale_executor(world) -> None:  # noqa: ANN001 - fixture
    from handlers.commands import Rollback
    from handlers.ports import NewJob
    from handlers.requests import request_rollback
    from sandbox.team import ALICE, CAROL

    svc = world.container().services
    store = svc.store
    LEASE = timedelta(minutes=2)
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "fence"))
    assert store.approve(incident.id, CAROL, incident.plan_hash, svc.clock.now()).decided
    assert [j.kind for j in store.pending_jobs(incident.id)] == ["execute"]  # queued in the deciding transaction
    assert store.stale_executions() == []  # never claimed is not stale: its job is due
    assert store.claim_execution(incident.id, "A", LEASE)
    assert store.pending_jobs(incident.id) == []  # the execute job is moot once an executor holds the lease
    assert not store.claim_execution(incident.id, "B", LEASE)  # A's lease is live
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        conn.execute("UPDATE incidents SET exec_lease_until = now() - interval '1 second'")
    assert store.claim_execution(incident.id, "B", LEASE)
    assert not store.renew_execution(incident.id, "A", LEASE)
    assert not store.mark_rolled_back(incident.id, "A", T0)
    assert store.start_monitoring(incident.id, "A", T0, ["post_stable"], [NewJob("monitor", T0, {})]) is None
    assert store.pending_jobs(incident.id) == []
    assert store.mark_rolled_back(incident.id, "B", T0)
    assert store.start_monitoring(incident.id, "B", T0, ["post_stable"], [NewJob("monitor", T0, {})]) is not None
