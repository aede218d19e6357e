"""The composition root: the ONE place that picks concrete adapters and wires the services."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.config_file import ConfigError, load_policy
from bot.directory import SlackDirectory
from bot.notifier import SlackNotifier
from bot.settings import Settings, secret
from handlers.clock import Clock, SystemClock
from handlers.config import Policy
from handlers.services import Services
from integrations.health import HttpHealthChecker
from integrations.pg_store import PostgresStore, thread_refs_from
from integrations.redis_state import RedisState
from integrations.vercel import VercelClient

log = logging.getLogger("rollbot")

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
    executor: ThreadPoolExecutor | None = None  # Bolt's listener executor, once an app is created
    closed: bool = field(default=False)

    def close(self) -> None:
        """Let in-flight listener work (a rollback after its ack) finish, then close adapters."""
        if self.closed:
            return
        self.closed = True
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        self.store.close()
        self.redis.close()
        self.vercel.close()
        self.health.close()


def slack_client(settings: Settings) -> WebClient:
    # Only 429s are retried (Slack refused the call, so nothing was posted); never connection errors.
    return WebClient(
        token=secret(settings.slack_bot_token),
        base_url=settings.slack_api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)],
        timeout=10,
    )


def build(settings: Settings, *, clock: Clock | None = None, policy: Policy | None = None,
          pool_size: int = 10) -> Container:
    missing = settings.missing(*REQUIRED)
    if missing:
        raise ConfigError("missing environment variables: " + ", ".join(missing) + " (see .env.example)")
    policy = policy or load_policy(settings.rollbot_config)
    clock = clock or SystemClock()
    store = PostgresStore(secret(settings.database_url), max_size=pool_size)
    redis = RedisState(secret(settings.redis_url), rebuild=partial(thread_refs_from, store))
    slack = slack_client(settings)
    vercel = VercelClient(secret(settings.vercel_token), base_url=settings.vercel_api_url,
                          team_id=settings.vercel_team_id)
    health = HttpHealthChecker()
    services = Services(
        policy=policy,
        store=store,
        live=redis,
        notifier=SlackNotifier(slack, policy, clock, redis),
        code=vercel,
        health=health,
        directory=SlackDirectory(slack, redis),
        clock=clock,
    )
    return Container(settings, policy, store, redis, slack, vercel, health, services)
