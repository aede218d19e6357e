"""Process environment (SPEC §3), read with pydantic-settings; secrets are SecretStr."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # Each field's docstring is its description in docs/configuration.md (bot.config_reference).
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      use_attribute_docstrings=True)

    slack_bot_token: SecretStr | None = None
    """The bot token (xoxb-…) from the app's OAuth page. Required."""
    slack_signing_secret: SecretStr | None = None
    """The app's signing secret: every request to /slack/events is verified with it. Required."""
    slack_app_token: SecretStr | None = None
    """The app-level token (xapp-…, connections:write) for Socket Mode (`rollbot socket`) only."""
    slack_api_url: str = "https://slack.com/api/"
    """The Slack Web API base URL (the emulator's in `rollbot dev` and the tests)."""
    database_url: SecretStr | None = None
    """The bot's own Postgres. Required (embedded in `rollbot dev`)."""
    redis_url: SecretStr | None = None
    """Redis (or Valkey). Required (embedded in `rollbot dev`)."""
    vercel_token: SecretStr | None = None
    """A Vercel access token, sent as a Bearer token. Required."""
    vercel_team_id: str | None = None
    """The Vercel team ID (team_…), sent as `teamId` with every call when set."""
    vercel_api_url: str = "https://api.vercel.com"
    """The Vercel REST API base URL."""
    rollbot_config: Path = Path("rollbot.toml")
    """The policy file (TOML)."""
    rollbot_secret_key: SecretStr | None = None
    """Fernet keys that encrypt env-var snapshots, comma separated, newest first (`rollbot secret-key` makes one). Required once an environment sets `env_snapshot_every`."""
    port: int = Field(default=3000, ge=1, le=65535)
    """The HTTP port of `rollbot web`."""
    rollbot_web_threads: int = Field(default=16, ge=2, le=256)
    """Threads per gunicorn worker of `rollbot web` (the number of workers is `WEB_CONCURRENCY`, default 2)."""
    rollbot_listener_threads: int = Field(default=32, ge=2, le=512)
    """Bolt's listener executor: the threads that run a listener's work after its ack."""
    rollbot_worker_nice: int = Field(default=10, ge=0, le=19)
    """How far `rollbot worker` lowers its CPU priority (Unix nice), so on a host it shares with `rollbot web` Slack's 3-second acks come first; 0 keeps it."""
    rollbot_worker_one_core: bool = True
    """`rollbot worker` keeps its threads on one CPU core at a time, the least busy it may use, looked at again every 2 s (Linux, two cores or more): its threads share one interpreter lock, and handing it between cores cost about as much CPU again as the work. It never uses more than one core; the tools it starts (pg_dump, pg_restore) get back the cores it started with. false lets the kernel spread it."""
    rollbot_worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """The port `rollbot worker` serves its own Prometheus `/metrics` on (rollbacks, jobs, Slack and Vercel calls); unset, it serves none. The web's `/metrics` has the web's series and the Postgres gauges."""
    rollbot_metrics_host: str = "0.0.0.0"
    """The address the own `/metrics` of `rollbot worker` (on `ROLLBOT_WORKER_METRICS_PORT`) and of `rollbot socket` (on `PORT`) listen on."""
    rollbot_log_level: str = "INFO"
    """The log level (DEBUG, INFO, WARNING, ERROR)."""
    rollbot_uncertain_window: float = Field(default=30.0, gt=0, le=600)
    """Seconds Rollbot watches a provider's own record after an uncertain call (timeout, dropped connection, 5xx) before concluding it did not take effect."""
    rollbot_kinds: str = ""
    """Extra rollback kinds, `module:factory` comma separated; each factory(settings) returns a RollbackKind (docs/adding-a-rollback-kind.md)."""

    def missing(self, *names: str) -> list[str]:
        """Names (as environment variables) of required settings that are unset."""
        return [name.upper() for name in names if getattr(self, name) in (None, "")]


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""
