"""Everything `rollbot dev` runs, with no credentials: embedded Postgres and Redis (unless
DATABASE_URL / REDIS_URL are set), the Slack and Vercel emulators with a demo team and project,
the web app (the same WSGI app `rollbot web` serves, on a threaded server) and the worker, both
in this process on one clock that the console can move forward."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bot.bootstrap import Container, build
from bot.settings import Settings
from bot.worker import WORKER_POOL, Worker
from bot.wsgi import RollbotWSGI
from handlers.clock import ShiftedClock
from integrations.schema import migrate
from integrations.secret_box import new_key
from sandbox.demo_db import DATABASE_URL_ENV, seed_demo_database
from sandbox.embedded import EmbeddedServer, services_from_env
from sandbox.slack_client import SignedSlackClient
from sandbox.slack_emulator import SlackEmulator
from sandbox.team import PROJECT, STAGING_PROJECT, USERS, sandbox_policy
from sandbox.vercel_emulator import VercelEmulator

SIGNING_SECRET = "sandbox-signing-secret"
BOT_TOKEN = "xoxb-sandbox"
VERCEL_TOKEN = "vercel-sandbox-token"
class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


DEFAULT_PORT = 3000  # SPEC's default (or $PORT), when it is free


class DevEnvironment:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self._asked_port = port
        self.port = port or int(os.environ.get("PORT") or DEFAULT_PORT)  # the bound port once start() has run
        self.clock = ShiftedClock()
        self.servers: list[EmbeddedServer] = []
        self.web: WSGIServer | None = None
        self.container: Container | None = None
        self.worker: Worker | None = None
        self._stop = threading.Event()
        self.slack = SlackEmulator(BOT_TOKEN)
        self.vercel = VercelEmulator(VERCEL_TOKEN, alias_delay=1.0)

    def start(self, say: Callable[[str], None] = print) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        say("• starting Postgres and Redis (embedded unless DATABASE_URL / REDIS_URL are set)")
        database_url, redis_url, self.servers = services_from_env(os.environ)
        migrate(database_url)
        say("• starting the Slack and Vercel emulators")
        self.slack.start()
        self.vercel.start()
        for name, (user_id, _) in USERS.items():
            self.slack.add_user(user_id, name, real_name=name.title())
        self.slack.add_usergroup("S01ONCALL", "oncall", ["U01CAROL", "U01DAN"])
        self.vercel.seed_demo(PROJECT)
        self.vercel.seed_demo(STAGING_PROJECT)  # a project of its own for staging, where drills run
        config = self.workdir / "rollbot.toml"
        config.write_text(sandbox_policy(self.vercel.health_url(PROJECT), str(self.workdir / "backups"),
                                         drills_reviewed=self.clock.now().date()))
        if not os.environ.get("DATABASE_URL"):  # an embedded Postgres of its own: the demo database lives there too
            say("• creating the demo application database (demo_shop) with its migrations")
            os.environ[DATABASE_URL_ENV] = seed_demo_database(database_url)
        self.env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": self.slack.url,
            "DATABASE_URL": database_url, "REDIS_URL": redis_url, "VERCEL_TOKEN": VERCEL_TOKEN,
            "VERCEL_API_URL": self.vercel.url, "ROLLBOT_CONFIG": str(config),
            "ROLLBOT_LOG_LEVEL": os.environ.get("ROLLBOT_LOG_LEVEL", "WARNING"),
            "ROLLBOT_SECRET_KEY": os.environ.get("ROLLBOT_SECRET_KEY") or self._secret_key(),
            "HTTP_PROXY": "", "HTTPS_PROXY": "", "http_proxy": "", "https_proxy": "",
        }
        settings = Settings(_env_file=None, **{k.lower(): v for k, v in self.env.items() if "proxy" not in k.lower()})  # type: ignore[call-arg, arg-type]
        say("• starting the web app and the worker (one clock for both)")
        self.container = build(settings, clock=self.clock, pool_size=8)
        self.web = self._bind(RollbotWSGI(self.container))
        self.port = int(self.web.server_address[1])
        threading.Thread(target=self.web.serve_forever, name="rollbot-dev-web", daemon=True).start()
        self.worker = Worker(build(settings, clock=self.clock, pool_size=WORKER_POOL), "dev-worker")
        threading.Thread(target=self._tick_forever, name="rollbot-dev-worker", daemon=True).start()
        say(f"  Slack events URL  http://127.0.0.1:{self.port}/slack/events  (health: /healthz, /readyz, /metrics)")
        say(f"  Slack emulator    {self.slack.url}  (state: {self.slack.root_url}/_emulator/state)")
        say(f"  Vercel emulator   {self.vercel.url}  (state: {self.vercel.url}/_emulator/state)")
        say(f"  signing secret    {SIGNING_SECRET}  (sandbox only)")

    def _secret_key(self) -> str:
        """The sandbox's key for env-var snapshots, kept beside its other files (mode 0600), so a
        later run on the same database can still open them."""
        path = self.workdir / "secret-key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(new_key())
        return path.read_text().strip()

    def _bind(self, app: RollbotWSGI) -> WSGIServer:
        """Port 3000 unless taken (then any free one); a port asked for is used or fails. Binding
        is the check: another process cannot take the port between a check and the bind."""
        preferred = int(os.environ.get("PORT") or DEFAULT_PORT)
        ports = [self._asked_port] if self._asked_port else [preferred, 0]
        for port in ports:
            try:
                return make_server("127.0.0.1", port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
            except OSError:
                if port == ports[-1]:
                    raise
        raise AssertionError("unreachable")

    def client(self) -> SignedSlackClient:
        return SignedSlackClient(f"http://127.0.0.1:{self.port}/slack/events", SIGNING_SECRET, self.slack)

    def tick(self) -> int:
        return self.worker.run_once() if self.worker else 0

    def _tick_forever(self) -> None:
        while not self._stop.wait(0.2):
            self.tick()

    def stop(self) -> None:
        self._stop.set()
        if self.web:
            self.web.shutdown()
            self.web.server_close()
        for container in (self.container, self.worker.container if self.worker else None):
            if container:
                container.close()
        self.slack.stop()
        self.vercel.stop()
        for server in self.servers:
            server.stop()
