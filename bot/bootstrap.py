"""The composition root: the ONE place that picks concrete adapters and wires the services."""

from __future__ import annotations

import importlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, cast

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.blocks.code_plan import CodePlanRenderer
from bot.blocks.db_plan import DatabasePlanRenderer
from bot.blocks.env_plan import EnvPlanRenderer
from bot.blocks.plans import PlanRenderer
from bot.config_file import ConfigError, load_policy
from bot.deferred import Deferred
from bot.directory import SlackDirectory
from bot.metrics import PrometheusTelemetry, provider_call
from bot.notifier import SlackNotifier
from bot.settings import Settings, secret
from bot.slack_api import MeasuredWebClient
from handlers.clock import Clock, SystemClock
from handlers.code import CodeKind
from handlers.combined import register_combined
from handlers.config import Policy
from handlers.db import DatabaseKind
from handlers.env import EnvKind
from handlers.flag import FlagKind
from handlers.kind import KindRegistry, RollbackKind
from handlers.plans import PlanBase
from handlers.services import Services
from integrations.edge_config import EdgeConfigClient
from integrations.migration_files import MigrationFolder
from integrations.pg_backups import PgBackups
from integrations.pg_replay import ReplayLedger
from integrations.pg_snapshots import PostgresSnapshots
from integrations.pg_store import PostgresStore, thread_refs_from
from integrations.redis_state import RedisState
from integrations.target_db import PostgresTarget
from integrations.vercel_env import VercelEnvClient

if TYPE_CHECKING:  # built in vercel_client() and health_checker(), where httpx is imported
    from integrations.health import HttpHealthChecker
    from integrations.vercel import VercelClient

log = logging.getLogger("rollbot")

RENDERERS: dict[str, PlanRenderer] = {"code": CodePlanRenderer(), "env": EnvPlanRenderer(), "database": DatabasePlanRenderer()}
REQUIRED = ("slack_bot_token", "slack_signing_secret", "database_url", "redis_url", "vercel_token")


@dataclass
class Container:
    settings: Settings
    policy: Policy
    store: PostgresStore
    redis: RedisState
    slack: WebClient
    vercel: VercelClient
    health: HttpHealthChecker
    services: Services
    replay: ReplayLedger | None = None  # the web's replay ledger, once a WSGI app is created (bot.wsgi)
    executor: ThreadPoolExecutor | None = None  # Bolt's listener executor, once an app is created
    closed: bool = field(default=False)

    def close(self) -> None:
        """Let in-flight listener work (a rollback after its ack) finish, then close adapters."""
        if self.closed:
            return
        self.closed = True
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        if self.replay is not None:
            self.replay.close()
        self.store.close()
        self.redis.close()
        self.vercel.close()
        self.health.close()


def slack_client(settings: Settings, *, timeout: int = 10, retry_429: bool = True) -> WebClient:
    # Only 429s are retried (Slack refused the call, so nothing was posted); never connection errors.
    return MeasuredWebClient(
        token=secret(settings.slack_bot_token),
        base_url=settings.slack_api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)] if retry_429 else [],
        timeout=timeout,
    )


def vercel_client(settings: Settings) -> VercelClient:
    from integrations.vercel import VercelClient

    return VercelClient(secret(settings.vercel_token), base_url=settings.vercel_api_url,
                        team_id=settings.vercel_team_id, report=_vercel_call)


def health_checker() -> HttpHealthChecker:
    from integrations.health import HttpHealthChecker

    return HttpHealthChecker()


def _vercel_call(method: str, path: str, status: str, seconds: float) -> None:
    provider_call("vercel", f"{method} {path}", status, seconds, ok=status.isdigit() and int(status) < 400)


def build_kinds(settings: Settings, vercel: VercelClient, store: PostgresStore, policy: Policy | None = None,
                clock: Clock | None = None) -> KindRegistry:
    """The registry of rollback kinds: the built-in ones, then those named in ROLLBOT_KINDS.
    With a policy, every approval rule must name a registered kind."""
    window = settings.rollbot_uncertain_window
    now = (clock or SystemClock()).now
    snapshots = PostgresSnapshots(store.pool, secret(settings.rollbot_secret_key) if settings.rollbot_secret_key
                                  else None)

    def still_open() -> list[tuple[int, PlanBase]]:
        return [(incident.id, incident.plan) for incident in store.open_incidents()]

    kinds = KindRegistry([CodeKind(vercel, uncertain_window=window, rolled_back=store.rolled_back_plans),
                          FlagKind(EdgeConfigClient(vercel), uncertain_window=window),
                          EnvKind(VercelEnvClient(vercel), snapshots, now, uncertain_window=window),
                          DatabaseKind(PostgresTarget(), MigrationFolder(), PgBackups(store.pool, clock=now), now,
                                       still_open)])
    for spec in filter(None, (part.strip() for part in settings.rollbot_kinds.split(","))):
        kinds.register(_plugin(spec, settings))
    register_combined(kinds)
    for name, env in (policy.environments.items() if policy else ()):
        for extra in env.policy.extra_kinds():
            if extra not in kinds:
                raise ConfigError(f"environments.{name}.policy.{extra}: no rollback kind is named {extra!r} "
                                  f"(known: {', '.join(kinds.names())})")
    return kinds


def _plugin(spec: str, settings: Settings) -> RollbackKind:
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute or "kind")
        kind = factory(settings)
    except Exception as error:
        raise ConfigError(f"ROLLBOT_KINDS: cannot load {spec!r} ({type(error).__name__}: {error})") from None
    if not isinstance(kind, RollbackKind):
        raise ConfigError(f"ROLLBOT_KINDS: {spec!r} did not return a RollbackKind")
    return kind


def build(settings: Settings, *, clock: Clock | None = None, policy: Policy | None = None,
          pool_size: int = 10, pool_wait: float = 5.0, http_on_first_use: bool = False) -> Container:
    """Every adapter and the services on them. With ``http_on_first_use`` (the web) the Vercel
    client and the health checker are built when first called (``bot.deferred``): a web worker
    imports httpx only when a listener reads Vercel (the Decide form's suggestions), never to
    answer a request or an approval."""
    missing = settings.missing(*REQUIRED)
    if missing:
        raise ConfigError("missing environment variables: " + ", ".join(missing) + " (see .env.example)")
    policy = policy or load_policy(settings.rollbot_config)
    clock = clock or SystemClock()
    # A Deferred stands in for the client it builds (every name but get, built and close is the
    # client's); the cast says so to mypy. Nothing checks these adapters' types at run time.
    vercel = (cast("VercelClient", Deferred(partial(vercel_client, settings))) if http_on_first_use
              else vercel_client(settings))
    registry: list[KindRegistry] = []  # the store reads plans with the kinds, which need its pool
    store = PostgresStore(secret(settings.database_url), lambda data: registry[0].load_plan(data), max_size=pool_size,
                          wait=pool_wait)
    try:
        kinds = build_kinds(settings, vercel, store, policy, clock)
    except BaseException:
        store.close()
        vercel.close()
        raise
    registry.append(kinds)
    redis = RedisState(secret(settings.redis_url), rebuild=partial(thread_refs_from, store))
    slack = slack_client(settings)
    health = cast("HttpHealthChecker", Deferred(health_checker)) if http_on_first_use else health_checker()
    services = Services(
        policy=policy,
        store=store,
        live=redis,
        notifier=SlackNotifier(slack, policy, clock, redis, kinds, store, RENDERERS),
        kinds=kinds,
        health=health,
        # Role checks run before an Approve click is acknowledged (Slack allows 3 s): the lookup of a
        # user group gets 2 s and no waiting out a 429; on failure the last copy stands in.
        directory=SlackDirectory(slack_client(settings, timeout=2, retry_429=False), redis),
        clock=clock,
        telemetry=PrometheusTelemetry(),
    )
    return Container(settings, policy, store, redis, slack, vercel, health, services)
