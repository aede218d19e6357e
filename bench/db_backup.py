"""Backing up and restoring a target with a million rows: Rollbot against `pg_dump`/`pg_restore`
run by hand on the same data, with the same binaries, side by side.

Rollbot's backup streams `pg_dump -Fc` through the bot (a 0600 file, sha256 and progress as it
goes, a catalogue row); its restore checks the file's sha256, then feeds `pg_restore --clean
--if-exists --single-transaction`. By hand: `pg_dump -Fc -f FILE` and the same `pg_restore` on the
file. Rounds alternate; medians are printed with the ratio (target: at most 1.2).

Run: `.venvs/py3.X/bin/python -m bench.db_backup [--rows N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ[_name] = ""

import psycopg  # noqa: E402
from psycopg import Connection  # noqa: E402
from psycopg.rows import DictRow, dict_row  # noqa: E402
from psycopg_pool import ConnectionPool  # noqa: E402

from integrations import pg_tools  # noqa: E402
from integrations.pg_backups import PgBackups  # noqa: E402
from integrations.schema import migrate  # noqa: E402
from sandbox.embedded import services_from_env  # noqa: E402

T = TypeVar("T")
TARGET_RATIO = 1.2
DATABASE_ENV = "BENCH_TARGET_URL"


def make_target(server_url: str, rows: int) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "rollbot_bench_target" WITH (FORCE)')
        conn.execute('CREATE DATABASE "rollbot_bench_target"')
    url = psycopg.conninfo.make_conninfo(server_url, dbname="rollbot_bench_target")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create schema supabase_migrations; create table supabase_migrations.schema_migrations "
                     "(version text primary key, statements text[], name text)")
        conn.execute("create table orders (id bigint primary key, customer text not null, total_cents integer, "
                     "note text, created_at timestamptz not null default now())")
        conn.execute("insert into orders (id, customer, total_cents, note) select g, 'customer-' || (g %% 5000), "
                     "g %% 100000, md5(g::text) from generate_series(1, %s) g", (rows,))
        conn.execute("create index orders_customer on orders (customer)")
        conn.execute("insert into supabase_migrations.schema_migrations values ('20261128000000', "
                     "array['create table orders (...)'], 'create_orders')")
    return url


def ignore(_: int) -> None:
    """Progress nobody watches."""


def timed(run: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = run()
    return time.perf_counter() - started, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    database_url, _, servers = services_from_env({k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    migrate(database_url)
    target = make_target(database_url, args.rows)
    os.environ[DATABASE_ENV] = target
    work = Path(tempfile.mkdtemp(prefix="rollbot-bench-db-"))
    pool: ConnectionPool[Connection[DictRow]] = ConnectionPool(
        database_url, min_size=1, max_size=2, connection_class=Connection[DictRow],
        kwargs={"row_factory": dict_row, "autocommit": True})
    try:
        backups = PgBackups(pool)
        with psycopg.connect(target) as conn:
            version_num = int(conn.execute("show server_version_num").fetchone()[0])  # type: ignore[index]
        tools, why = pg_tools.find_tools(pg_tools.server_major(version_num))
        if tools is None:
            raise SystemExit(why)
        hand = pg_tools.ToolTarget.from_url(target)
        env = {**os.environ, **hand.env(10)}
        results: dict[str, list[float]] = {"backup: Rollbot": [], "backup: by hand": [], "restore: Rollbot": [],
                                           "restore: by hand": []}
        latest = None
        for n in range(args.rounds):
            dump = work / f"hand-{n}.dump"
            hand_dump = [str(tools.pg_dump), "-Fc", "--no-password", "-f", str(dump), "--dbname", hand.conninfo]
            hand_restore = [str(tools.pg_restore), "--clean", "--if-exists", "--single-transaction", "--no-owner",
                            "--no-password", "--exit-on-error", "--dbname", hand.conninfo, str(dump)]
            run = partial(subprocess.run, env=env, check=True)
            results["backup: by hand"].append(timed(partial(run, hand_dump))[0])
            seconds, latest = timed(partial(backups.backup, "bench", DATABASE_ENV, str(work / "rollbot"), f"round {n}",
                                            None, ["20261128000000"], ignore, timedelta(minutes=5)))
            results["backup: Rollbot"].append(seconds)
            results["restore: by hand"].append(timed(partial(run, hand_restore))[0])
            results["restore: Rollbot"].append(timed(partial(backups.restore, DATABASE_ENV, latest, ignore))[0])
        size = latest.size if latest else 0
        print(f"{args.rows:,} rows, dump {size / 2**20:.1f} MiB, {tools.label}, {args.rounds} rounds (medians):")
        worst = 0.0
        for step in ("backup", "restore"):
            ours, theirs = statistics.median(results[f"{step}: Rollbot"]), statistics.median(results[f"{step}: by hand"])
            worst = max(worst, ours / theirs)
            print(f"  {step:8s} Rollbot {ours:6.2f} s   by hand {theirs:6.2f} s   ratio {ours / theirs:.2f} "
                  f"(target <= {TARGET_RATIO})")
        return 0 if worst <= TARGET_RATIO else 1
    finally:
        pool.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "rollbot_bench_target" WITH (FORCE)')
        for server in servers:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
