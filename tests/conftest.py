"""Test session: real Postgres and Redis (a URL if given, else started here on free loopback
ports), the Slack and Vercel emulators over real HTTP, and the bot's own processes."""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from structlog.contextvars import clear_contextvars

from integrations.schema import migrate
from sandbox.embedded import create_database, start_postgres, start_redis
from tests.world import BotServer, World, make_world

# slack-sdk ignores NO_PROXY: make sure nothing in the environment routes loopback traffic away.
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ[_name] = ""

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = start_postgres()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield given
        return
    server = start_redis()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_database(postgres_server_url: str) -> str:
    """A database migrated once; each test gets a fresh copy of it."""
    name = f"rollbot_template_{os.getpid()}"
    url = create_database(postgres_server_url, name, exist_ok=True)
    migrate(url)
    return name


@pytest.fixture
def database_url(postgres_server_url: str, template_database: str) -> Iterator[str]:
    name = f"rollbot_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    base = postgres_server_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    yield redis_server_url
    client.flushdb()
    client.close()


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def world(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[World]:
    w = make_world(database_url, redis_url, tmp_path)
    try:
        yield w
    finally:
        w.close()
        w.slack.stop()
        w.vercel.stop()


_targets = itertools.count()


@pytest.fixture
def target(world: World, postgres_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The sandbox's demo application database (a database rollback's target), seeded for this
    test and named for the web process and the test's in-process worker."""
    from sandbox.demo_db import DATABASE_URL_ENV, seed_demo_database

    name = f"demo_shop_{os.getpid()}_{next(_targets)}"
    url = seed_demo_database(postgres_server_url, name)
    world.extra_env[DATABASE_URL_ENV] = url
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    yield url
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def bot(world: World) -> Iterator[BotServer]:
    server = BotServer(world)
    try:
        yield server
    finally:
        output = server.stop()
        if "Traceback" in output:
            print(output[-6000:])


# -- docs/reliability.md: every fault and attack tried, from this run's results -----------------

RELIABILITY_RESULTS = Path(__file__).resolve().parent.parent / "build" / (
    f"reliability-py{sys.version_info[0]}.{sys.version_info[1]}.json")
_reliability: dict[str, dict[str, object]] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long property run (HYPOTHESIS_PROFILE=long: 10,000 examples each) takes minutes per
    test: the per-test timeout does not apply to it."""
    if os.environ.get("HYPOTHESIS_PROFILE") == "long":
        for item in items:
            item.add_marker(pytest.mark.timeout(0))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability(kind, name, trials=1): a fault or an attack this test tries, for docs/reliability.md "
        "(kind: 'fault' or 'attack'; trials: how many times one run of the test tries it)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker("reliability")
    if marker is not None and (report.when == "call" or report.outcome != "passed"):
        kind, name = marker.args
        entry = _reliability.setdefault(item.nodeid, {"kind": kind, "name": name,
                                                      "trials": int(marker.kwargs.get("trials", 1)),
                                                      "outcome": "passed"})
        if report.outcome != "passed":
            entry["outcome"] = report.outcome
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _reliability:
        RELIABILITY_RESULTS.parent.mkdir(exist_ok=True)
        RELIABILITY_RESULTS.write_text(json.dumps({"python": sys.version.split()[0], "tests": _reliability},
                                                  indent=1, sort_keys=True))


@pytest.fixture(autouse=True)
def _log_context_is_per_test() -> Iterator[None]:
    """The core binds the incident for the logs in the caller's context (bot.logs); a test that
    calls it directly must not leave it bound for the next test's lines."""
    yield
    clear_contextvars()
