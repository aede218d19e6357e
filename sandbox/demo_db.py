"""The sandbox's demo target database (``demo_shop``): the team's own application database, as a
database rollback sees it, with a Supabase-style history and real rows.

Its migrations are in ``sandbox/demo_migrations``: customers; orders (with reverse SQL beside it);
a view over orders (reverse SQL in a ``-- rollback`` section); a column added to customers (the
same). So the console can revert the newest migration, and see reverting ``create_orders``
refused because the view, applied later, uses the table.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from pglast import split

DEMO_MIGRATIONS = Path(__file__).parent / "demo_migrations"
DATABASE_URL_ENV = "DEMO_DATABASE_URL"
ROWS = {  # inserted right after the migration of that version
    "20261101090000": ["insert into customers (email) values ('ana@bigcorp.test'), ('ben@shop.test'), "
                       "('chloe@bigcorp.test'), ('dev@shop.test')"],
    "20261120090000": ["insert into orders (customer_id, status, total_cents) select c.id, 'paid', 1000 * g "
                       "from customers c, generate_series(1, 3) g"],
}
HISTORY = """create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (version text primary key, statements text[], name text)"""


def migration_files() -> list[Path]:
    return sorted(p for p in DEMO_MIGRATIONS.glob("*.sql") if not p.name.endswith(".down.sql"))


def seed_demo_database(server_url: str, name: str = "demo_shop") -> str:
    """(Re)create database ``name`` on the server of ``server_url`` with the demo migrations
    applied as `supabase db push` would (each one's statements recorded); returns its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(HISTORY)
        for path in migration_files():
            version, _, rest = path.stem.partition("_")
            statements = list(split(path.read_text()))
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement.encode())
                conn.execute("insert into supabase_migrations.schema_migrations (version, statements, name) "
                             "values (%s, %s, %s)", (version, statements, rest))
            for row in ROWS.get(version, []):
                conn.execute(row.encode())
    return url
