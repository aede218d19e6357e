"""`rollbot check-config`: validate env + policy, then ping every dependency. Clear, actionable."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import httpx
import psycopg
import redis
from slack_sdk.errors import SlackApiError

from bot.bootstrap import REQUIRED, slack_client
from bot.config_file import ConfigError, load_policy
from bot.logs import redact
from bot.settings import Settings, secret
from integrations.schema import current_version, migration_files
from integrations.secret_box import SecretBox
from integrations.vercel import VercelClient


def check_config(settings: Settings, secrets: list[str]) -> int:
    failures = 0

    def report(name: str, check: Callable[[], str]) -> None:
        nonlocal failures
        try:
            detail = check()
            print(redact(f"ok    {name}: {detail}", secrets))
        except Exception as error:  # every failure is printed, none raised
            failures += 1
            print(redact(f"FAIL  {name}: {_explain(error)}", secrets))

    missing = settings.missing(*REQUIRED)
    report("environment", lambda: "all required variables set" if not missing else _raise(
        ConfigError("missing " + ", ".join(missing) + " (see .env.example)")))
    policy_holder = {}

    def policy() -> str:
        policy_holder["p"] = load_policy(settings.rollbot_config)
        envs = policy_holder["p"].environments
        return f"{settings.rollbot_config}: {len(envs)} environment(s): {', '.join(envs)}"

    report("policy", policy)
    if settings.database_url:
        def database() -> str:
            version = current_version(secret(settings.database_url))
            latest = migration_files()[-1][0]
            if version != latest:
                raise ConfigError(f"schema version {version}, expected {latest}: run `rollbot migrate`")
            return f"reachable, schema version {version}"
        report("postgres", database)
    if settings.redis_url:
        report("redis", lambda: "PONG" if redis.Redis.from_url(secret(settings.redis_url), socket_timeout=3).ping() else "no answer")
    if settings.slack_bot_token:
        report("slack", lambda: "authenticated as " + str(slack_client(settings).auth_test().get("user")))
    snapshotting = [name for name, env in policy_holder["p"].environments.items()
                    if env.env_snapshot_every is not None] if "p" in policy_holder else []
    if settings.rollbot_secret_key:
        def secret_key() -> str:
            box = SecretBox(secret(settings.rollbot_secret_key))
            box.open(box.seal(b"check"))
            keys = len([k for k in secret(settings.rollbot_secret_key).split(",") if k.strip()])
            opened = _newest_snapshot_opens(box, secret(settings.database_url)) if settings.database_url else ""
            return f"{keys} key(s); the first encrypts, every one decrypts{opened}"
        report("ROLLBOT_SECRET_KEY", secret_key)
    elif snapshotting:
        report("ROLLBOT_SECRET_KEY", partial(_raise, ConfigError(
            f"not set, but {', '.join(snapshotting)} take(s) env-var snapshots (`env_snapshot_every`), which are "
            "encrypted with it; make one with `rollbot secret-key`")))
    if settings.vercel_token and "p" in policy_holder:
        vercel = VercelClient(secret(settings.vercel_token), base_url=settings.vercel_api_url,
                              team_id=settings.vercel_team_id, max_attempts=1)
        for name, env in policy_holder["p"].environments.items():
            if env.vercel_project:
                report(f"vercel ({name})", partial(_serves, vercel, env.vercel_project))
    for name, env in (policy_holder["p"].environments.items() if "p" in policy_holder else ()):
        if env.database_url_env:
            report(f"database ({name})", partial(_target, env.database_url_env, env.migrations_dir))
    print("configuration OK" if not failures else f"{failures} problem(s) found")
    return 0 if not failures else 1


def _newest_snapshot_opens(box: SecretBox, database_url: str) -> str:
    """A key that cannot open the snapshots already stored is the wrong key (or a rotation dropped
    the old key too early): say so now, not during an incident."""
    try:
        with psycopg.connect(database_url, connect_timeout=3) as conn:
            row = conn.execute("SELECT id, sealed FROM env_snapshots ORDER BY id DESC LIMIT 1").fetchone()
    except psycopg.Error:
        return ""  # the postgres line reports the database itself
    if row is None:
        return "; no snapshots yet"
    box.open(bytes(row[1]))
    return f"; it opens the newest snapshot (S-{row[0]})"


def _target(database: str, migrations_dir: str | None) -> str:
    """The target database a database rollback would work on: reachable, its history readable,
    its migration folder readable, and a pg_dump that can back it up."""
    from integrations.migration_files import MigrationFolder
    from integrations.target_db import PostgresTarget

    target = PostgresTarget()
    problem = target.unavailable(database)
    if problem:
        raise ConfigError(problem)
    history = target.history(database)
    files = MigrationFolder().migrations(migrations_dir) if migrations_dir else {}
    reversible = sum(1 for f in files.values() if f.reverse_sql and not f.problem)
    tools = _tools_for(database)
    return (f"${database}: PostgreSQL {target.server_version(database).split()[0]}, {len(history)} migrations "
            f"applied, {len(files)} in {migrations_dir} ({reversible} with reverse SQL); {tools}")


def _tools_for(database: str) -> str:
    from integrations import pg_tools
    from integrations.target_db import PostgresTarget

    major = pg_tools.parse_version(PostgresTarget().server_version(database))
    tools, why = pg_tools.find_tools(major[1] if major else ())
    if tools is None:
        raise ConfigError(why or "no pg_dump/pg_restore found")
    return f"backups with {tools.label}"


def _serves(vercel: VercelClient, project: str) -> str:
    return f"project {project} serves {vercel.alias_state(project).production_id}"


def _raise(error: Exception) -> str:
    raise error


def _explain(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return f"Slack refused: {error.response.get('error')} (check SLACK_BOT_TOKEN / SLACK_API_URL)"
    if isinstance(error, psycopg.OperationalError):
        return "cannot connect to DATABASE_URL (" + str(error).splitlines()[0][:200] + ")"
    if isinstance(error, redis.RedisError):
        return f"cannot reach REDIS_URL ({type(error).__name__})"
    if isinstance(error, httpx.HTTPError):
        return f"cannot reach the service ({type(error).__name__})"
    return str(error)
