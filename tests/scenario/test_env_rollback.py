"""An env-var rollback through Slack, end to end: `rollbot web` as a subprocess, the worker, the
Slack emulator and the Vercel emulator's env vars and deployments, real Postgres, over real HTTP.
No value of a variable may reach Slack, Postgres (outside the sealed snapshots) or the logs."""

from __future__ import annotations

import json
import logging

import psycopg
import pytest
import redis

from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.world import BotServer, World

GOOD, BAD = "https://api.demo-shop.test/v2", "https://api.demo-shop.test/broken-by-a-config-push"
SECRET = "sk_live_demo_0123456789"
ENV = f"/v9/projects/{PROJECT}/env/"


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def _database_text(world: World) -> str:
    """Every row of every table of the bot's database as text, except the sealed snapshot bytes."""
    with psycopg.connect(world.database_url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        rows = []
        for table in tables:
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND data_type <> 'bytea'",
                (table,))]
            listed = ", ".join(f'"{c}"' for c in columns)
            rows += [str(r) for r in conn.execute(f'SELECT {listed} FROM "{table}"')]  # noqa: S608 - catalogue names
    return "\n".join(rows)


def _redis_text(world: World) -> str:
    """Every key and value in Redis as text."""
    client = redis.Redis.from_url(world.redis_url, decode_responses=True)
    dumped = []
    for key in client.scan_iter():
        kind = client.type(key)
        value = (client.get(key) if kind == "string" else client.hgetall(key) if kind == "hash"
                 else client.lrange(key, 0, -1) if kind == "list" else client.smembers(key) if kind == "set"
                 else client.zrange(key, 0, -1) if kind == "zset" else kind)
        dumped.append(f"{key} = {value}")
    return "\n".join(dumped)


def _ephemeral(world: World, client, text: str, marker: str = "") -> str:  # noqa: ANN001 - the signed client
    """The bot's ephemeral answer to ``text`` (the first that contains ``marker``)."""
    seen = len(world.slack.ephemerals(user=ALICE))
    client.command(ALICE, text, channel_id=CHANNEL)
    return _text(world.work_until(lambda: [e for e in world.slack.ephemerals(user=ALICE)[seen:] if marker in _text(e)],
                            message=text)[-1])


def test_a_variable_is_restored_from_its_snapshot_redeployed_and_verified(world: World, bot: BotServer,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world.worker().run_once()  # the worker's first pass takes the scheduled snapshot
    world.vercel.set_env_value(PROJECT, "API_URL", BAD)  # a bad config push, by hand
    before_production = world.vercel.production(PROJECT)
    client = bot.client(world)

    listed = _ephemeral(world, client, "env prod list")
    assert "`S-1`" in listed and "(scheduled): 3 variables, 1 sensitive (not restorable)" in listed
    answer = world.slack.ephemerals(user=ALICE)[-1]  # the listing is in sections; `text` is a short fallback
    assert "`S-1`" in json.dumps(answer["blocks"]) and "S-1" not in answer["text"] and len(answer["text"]) <= 150

    client.command(ALICE, "config prod API_URL checkout calls the wrong API", channel_id=CHANNEL)
    root = world.work_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="the root message")
    shown = _text(root)
    assert "Env-var rollback" in shown and "API_URL" in shown and "changed:" in shown and "S-1" in shown
    assert world.vercel.calls_to("PATCH", ENV) == [] and world.vercel.calls_to("POST", "/v13/deployments") == []

    assert client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve").status_code == 200
    verified = world.work_until(lambda: next((m for m in world.slack.thread(CHANNEL, root["ts"])
                                              if "read back as in S-1" in _text(m)), None), timeout=30,
                                message="the verification")
    [patch] = world.vercel.calls_to("PATCH", ENV)
    assert patch["body"] == {"value": GOOD}
    [redeploy] = world.vercel.calls_to("POST", "/v13/deployments")
    assert redeploy["body"]["deploymentId"] == before_production and redeploy["body"]["target"] == "production"
    rebuilt = world.vercel.production(PROJECT)
    assert rebuilt != before_production and world.vercel.env_at_build[rebuilt]["API_URL"] == GOOD
    assert world.vercel.env_values(PROJECT) == {"API_URL": GOOD, "FEATURE_RECS": "on", "PAYMENT_SECRET": SECRET}
    assert f"production serves {rebuilt}" in _text(verified)

    listed = _ephemeral(world, client, "env prod list")
    assert "(before RB-1)" in listed and "API_URL changed" in listed

    # No value anywhere but Vercel and the sealed snapshots.
    surfaces = {"slack": json.dumps(world.slack.snapshot(), default=str), "postgres": _database_text(world),
                "redis": _redis_text(world),
                "web log": bot.log_path.read_text(errors="replace"), "worker log": caplog.text}
    for where, text in surfaces.items():
        for value in (GOOD, BAD, SECRET):
            assert value not in text, f"{value} reached the {where}"
    assert world.slack.validation_errors == []


def test_env_requests_that_cannot_be_planned_are_refused_and_change_nothing(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    assert "no env-var snapshot of `prj_demo` yet" in _ephemeral(world, client, "env prod API_URL", "Not started")
    world.worker().run_once()
    assert "is a sensitive variable" in _ephemeral(world, client, "env prod PAYMENT_SECRET", "Not started")
    assert "`NOPE` is not in snapshot `S-1`" in _ephemeral(world, client, "env prod NOPE", "Not started")
    assert "nothing to restore" in _ephemeral(world, client, "env prod API_URL", "Not started")
    assert "UPPER_CASE" in _ephemeral(world, client, "env prod api_url")
    assert world.vercel.calls_to("PATCH", ENV) == [] and world.slack.messages(CHANNEL) == []
