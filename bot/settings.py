"""Process environment (SPEC §3), read with pydantic-settings; secrets are SecretStr."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    vercel_token: SecretStr | None = None
    vercel_team_id: str | None = None
    vercel_api_url: str = "https://api.vercel.com"
    rollbot_config: Path = Path("rollbot.toml")
    rollbot_secret_key: SecretStr | None = None
    port: int = Field(default=3000, ge=1, le=65535)
    # Operational knobs (see .env.example and the README).
    rollbot_web_threads: int = Field(default=16, ge=2, le=256)
    rollbot_listener_threads: int = Field(default=32, ge=2, le=512)
    # How much `rollbot worker` lowers its CPU priority (Unix nice): on a host it shares with the
    # web process, Slack's 3-second acks come before the worker's background work. 0 keeps it.
    rollbot_worker_nice: int = Field(default=10, ge=0, le=19)
    rollbot_log_level: str = "INFO"
    # After an uncertain provider call (timeout, dropped connection, 5xx), how long Rollbot watches
    # the provider's own record for it before concluding it did not take effect (seconds).
    rollbot_uncertain_window: float = Field(default=30.0, gt=0, le=600)
    # Extra rollback kinds: comma-separated "module:factory", each factory(settings) -> RollbackKind
    # (docs/adding-a-rollback-kind.md).
    rollbot_kinds: str = ""

    def missing(self, *names: str) -> list[str]:
        """Names (as environment variables) of required settings that are unset."""
        return [name.upper() for name in names if getattr(self, name) in (None, "")]


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""
