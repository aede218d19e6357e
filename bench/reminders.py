"""200 monitoring reminders due at once, in 200 channels: how long until the worker sent them all?

The production shape: a real `rollbot worker` process (its bounded pool, the real Slack pacing,
the message ledger, fresh health checks for each), real Postgres and Redis, and the Slack and
Vercel emulators over loopback HTTP in this process (as Slack and Vercel are elsewhere in
production, they do not share the worker's interpreter). The reminders become due in one
transaction, which wakes the worker by NOTIFY; the clock runs until the 200th reminder is in
Slack. Printed as seconds and as a ratio to the target (3 s), for several runs.

Run: `.venvs/py3.X/bin/python -m bench.reminders [--runs N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ[_name] = ""

import psycopg  # noqa: E402

from integrations.pg_work import JOBS_CHANNEL  # noqa: E402
from integrations.schema import migrate  # noqa: E402
from sandbox.embedded import services_from_env  # noqa: E402
from tests.fault.cluster import WorkerProcess  # noqa: E402
from tests.integration.test_worker_throughput import COUNT, _monitored_incidents  # noqa: E402
from tests.world import World, make_world, wait_until  # noqa: E402

TARGET_SECONDS = 3.0


def _reminders(world: World, index: int) -> int:
    marker = f"Monitoring {index}/3"
    return sum(1 for m in world.slack.messages() if marker in json.dumps(m.get("blocks")))


def one_run(world: World, index: int) -> float:
    """Make reminder ``index`` of every incident due at once; seconds until all are in Slack."""
    with psycopg.connect(world.database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("UPDATE due_jobs SET due_at = now() WHERE kind = 'monitor' AND status = 'due' "
                     "AND payload->>'index' = %s", (str(index),))
        conn.execute("SELECT pg_notify(%s, 'monitor')", (JOBS_CHANNEL,))
        started = time.monotonic()
    while _reminders(world, index) < COUNT:
        if time.monotonic() - started > 60:
            raise SystemExit(f"only {_reminders(world, index)} of {COUNT} reminders after 60 s")
        time.sleep(0.005)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="reminder rounds to time (at most 3)")
    runs = min(max(parser.parse_args().runs, 1), 3)
    database_url, redis_url, servers = services_from_env(os.environ)
    migrate(database_url)
    world = make_world(database_url, redis_url, Path(tempfile.mkdtemp(prefix="rollbot-bench-")))
    worker = None
    try:
        _monitored_incidents(world, COUNT)
        with psycopg.connect(world.database_url, autocommit=True) as conn:  # all three rounds, not due yet
            conn.execute("UPDATE due_jobs SET status = 'cancelled' WHERE kind = 'monitor'")
            conn.execute("INSERT INTO due_jobs (incident_id, kind, due_at, payload) SELECT i.id, 'monitor', "
                         "now() + interval '1 day', jsonb_build_object('index', n, 'total', 3) "
                         "FROM incidents i, generate_series(1, 3) n")
        worker = WorkerProcess(world, 0)
        wait_until(worker.leads, timeout=30, message="the worker to lead")
        time.sleep(0.5)  # its LISTEN is in place once it leads and has ticked once
        times = []
        for index in range(1, runs + 1):
            elapsed = one_run(world, index)
            times.append(elapsed)
            print(f"round {index}: {COUNT} reminders due at once in {COUNT} channels, all in Slack in {elapsed:.2f} s")
        median = statistics.median(times)
        print(f"median {median:.2f} s   ratio to the {TARGET_SECONDS:g} s target: {median / TARGET_SECONDS:.2f}")
        return 0
    finally:
        if worker is not None:
            worker.stop()
        world.close()
        world.slack.stop()
        world.vercel.stop()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
