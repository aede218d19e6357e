"""A database rollback through Slack, end to end: `rollbot web` as a subprocess, the worker, the
Slack emulator and a real target Postgres with a Supabase-style history, its migration folder
(sandbox/demo_migrations) and real rows; `pg_dump` / `pg_restore` for real."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import psycopg

from sandbox.team import ALICE, CAROL, CHANNEL, DAN
from tests.world import BotServer, World

TIER, ORDERS = "20261128080000", "20261120090000"


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def _versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations order by 1")]


def _has_tier(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from information_schema.columns where table_name = 'customers' "
                            "and column_name = 'tier'").fetchone() == (1,)


def _approved_by_two(world: World, bot: BotServer, text: str) -> dict:
    client = bot.client(world)
    seen = len(world.slack.messages(CHANNEL))
    client.command(ALICE, text, channel_id=CHANNEL)
    root = world.work_until(lambda: world.slack.messages(CHANNEL)[seen:] and world.slack.messages(CHANNEL)[seen],
                      timeout=20, message="the root message")
    for approver in (DAN, CAROL):
        assert client.click(approver, channel=CHANNEL, message_ts=root["ts"], action_id="approve").status_code == 200
    return root


def _thread_says(world: World, root: dict, words: str, timeout: float = 60) -> dict:
    return world.work_until(lambda: next((m for m in world.slack.thread(CHANNEL, root["ts"]) if words in _text(m)),
                                         None), timeout=timeout, message=words)


def test_the_newest_migration_is_reverted_after_a_backup_and_two_approvals(world: World, target: str,
                                                                          bot: BotServer, tmp_path: Path) -> None:
    root = _approved_by_two(world, bot, f"db prod {TIER} tier column broke signups")
    verified = _thread_says(world, root, f"the history row of {TIER} is gone")
    assert "public.customers.tier is gone" in _text(verified)
    assert _versions(target) == ["20261101090000", ORDERS, "20261127160000"] and not _has_tier(target)
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from customers").fetchone() == (4,)  # the rows are still there
    [dump] = list((tmp_path / "backups").iterdir())
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600 and dump.stat().st_size > 0
    with psycopg.connect(world.database_url) as conn:
        row = conn.execute("select size, sha256, reason, versions from db_backups").fetchone()
    assert row is not None and row[0] == dump.stat().st_size and row[2] == "before RB-1" and TIER in row[3]
    progress = next(m for m in world.slack.thread(CHANNEL, root["ts"]) if "Progress" in _text(m))
    assert "B-1:" in _text(progress) and "sha256" in _text(progress)
    assert "Backup current state" in _text(world.slack.messages(CHANNEL)[0])
    assert world.slack.validation_errors == []


def test_a_migration_a_later_one_depends_on_is_refused_and_nothing_is_touched(world: World, target: str,
                                                                             bot: BotServer) -> None:
    client = bot.client(world)
    client.command(ALICE, f"db prod {ORDERS}", channel_id=CHANNEL)
    refusal = world.work_until(lambda: [e for e in world.slack.ephemerals(user=ALICE) if "Not started" in _text(e)],
                         message="the refusal")[-1]
    assert "`20261127160000_order_totals_view` (touches public.orders)" in _text(refusal)
    assert _versions(target)[-1] == TIER and world.slack.messages(CHANNEL) == []


def test_a_lock_timeout_changes_nothing_and_the_thread_says_so(world: World, target: str, bot: BotServer) -> None:
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(target) as conn, conn.transaction():
            conn.execute("lock table customers in access share mode")  # a long report: pg_dump can read past it
            locked.set()
            release.wait(60)

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    assert locked.wait(10)
    try:
        root = _approved_by_two(world, bot, f"db prod {TIER}")
        failure = _thread_says(world, root, "supabase migration down", timeout=90)  # the failure note
    finally:
        release.set()
        holder.join(10)
    assert "lock_timeout" in _text(failure) and "nothing was changed" in _text(failure)
    assert _versions(target)[-1] == TIER and _has_tier(target)


def test_a_backup_is_restored_and_the_history_matches_it(world: World, target: str, bot: BotServer) -> None:
    root = _approved_by_two(world, bot, f"db prod {TIER}")
    _thread_says(world, root, f"the history row of {TIER} is gone")
    assert not _has_tier(target)
    restore = _approved_by_two(world, bot, "db prod restore B-1 the tier column was fine after all")
    _thread_says(world, restore, "the migration history matches backup B-1")
    assert _versions(target)[-1] == TIER and _has_tier(target)
