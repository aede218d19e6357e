"""Running the app: gunicorn (HTTP) or Socket Mode."""

from __future__ import annotations

import logging
from typing import Any

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
    from gunicorn.app.base import BaseApplication

    from bot.bootstrap import Container

    class _Gunicorn(BaseApplication):
        container: Container | None = None  # the one of this worker process, set by load()

        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": max(1, workers),
                "worker_class": "gthread",
                "threads": settings.rollbot_web_threads,
                "timeout": 60,
                "graceful_timeout": 20,
                "keepalive": 5,
                "accesslog": None,
                "loglevel": "warning",
                "proc_name": "rollbot-web",
                "worker_exit": self.worker_exit,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from bot.bootstrap import build
            from bot.wsgi import RollbotWSGI

            self.container = build(settings)
            return RollbotWSGI(self.container)

        def worker_exit(self, _server: object, _worker: object) -> None:
            """Close the worker's pools before the interpreter exits. Left to the garbage
            collector at shutdown, psycopg's pool waits 5 s per background thread on Python
            3.13+, which held every SIGTERM for 20 s."""
            if self.container is not None:
                self.container.close()

    log.info("rollbot web on %s:%s with %s worker(s)", host, port, workers)
    _Gunicorn().run()
    return 0


def serve_socket_mode(settings: Settings) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import create_app
    from bot.bootstrap import build
    from bot.config_file import ConfigError

    if not settings.slack_app_token:
        raise ConfigError("SLACK_APP_TOKEN (xapp-…) is required for Socket Mode")
    SocketModeHandler(create_app(build(settings)), secret(settings.slack_app_token)).start()
    return 0
