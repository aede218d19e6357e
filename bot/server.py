"""Running the app: gunicorn (HTTP) or Socket Mode."""

from __future__ import annotations

import logging
import os
import sys

from bot.settings import Settings, secret

log = logging.getLogger("rollbot.web")


def preflight(settings: Settings) -> None:
    """Fail fast and clearly on a missing variable or a bad policy file (ConfigError)."""
    from bot.bootstrap import REQUIRED
    from bot.config_file import ConfigError, load_policy

    missing = settings.missing(*REQUIRED)
    if missing:
        raise ConfigError("missing environment variables: " + ", ".join(missing) + " (see .env.example)")
    load_policy(settings.rollbot_config)


def serve(settings: Settings, *, host: str, port: int, workers: int) -> int:
    """Replace this process with the gunicorn master (bot.web_master), which imports nothing of
    the app: the configuration was checked here, and each worker builds the app after the fork."""
    log.info("rollbot web on %s:%s with %s worker(s)", host, port, workers)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execv(sys.executable, [sys.executable, "-m", "bot.web_master", host, str(port), str(max(1, workers)),
                              str(settings.rollbot_web_threads)])
    return 0  # not reached


def serve_socket_mode(settings: Settings) -> int:
    from bot.app import create_app
    from bot.bootstrap import build
    from bot.config_file import ConfigError

    if not settings.slack_app_token:
        raise ConfigError("SLACK_APP_TOKEN (xapp-…) is required for Socket Mode")
    from bot.metrics import serve_metrics, state_gauges
    from bot.request_scope import command_words
    from bot.socket_mode import RollbotSocketMode

    container = build(settings)
    # No HTTP for Slack in Socket Mode: PORT serves the metrics (with the Postgres gauges) instead.
    serve_metrics(settings.rollbot_metrics_host, settings.port, lambda: state_gauges(container.services))
    handler = RollbotSocketMode(create_app(container), secret(settings.slack_app_token))
    handler.words = command_words(container.services.kinds)
    handler.start()
    return 0
