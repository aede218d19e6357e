"""The outside world of a test: emulators seeded with a team and a project, a policy file,
the bot's web server as a real subprocess, and an in-process worker with a movable clock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from bot.bootstrap import Container, build
from bot.settings import Settings
from bot.worker import WORKER_POOL, Worker
from handlers.clock import ShiftedClock
from sandbox.slack_client import SignedSlackClient
from sandbox.slack_emulator import SlackEmulator
from sandbox.team import ALICE, BOB, CAROL, DAN, PROJECT, sandbox_policy
from sandbox.vercel_emulator import VercelEmulator

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-bot-token"
VERCEL_TOKEN = "vercel-test-token"
SECRET_KEY = "3Q9nZp5m4w2Qe0y8aVt1cX7bH6kLrS2dF4gJ8uN0oPw="  # a Fernet key for the tests' env-var snapshots
LEADS = [f"U02LEAD{n:02d}" for n in range(1, 21)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)


@dataclass
class World:
    slack: SlackEmulator
    vercel: VercelEmulator
    database_url: str
    redis_url: str
    config_path: Path
    clock: ShiftedClock = field(default_factory=ShiftedClock)
    containers: list[Container] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. ROLLBOT_KINDS for a test kind

    def env(self) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.url,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "VERCEL_TOKEN": VERCEL_TOKEN,
            "VERCEL_API_URL": self.vercel.url,
            "ROLLBOT_CONFIG": str(self.config_path),
            "ROLLBOT_LOG_LEVEL": "WARNING",
            "ROLLBOT_UNCERTAIN_WINDOW": "2",
            "ROLLBOT_SECRET_KEY": SECRET_KEY,
            **self.extra_env,
        }

    def settings(self) -> Settings:
        return Settings(_env_file=None, **{k.lower(): v for k, v in self.env().items()})  # type: ignore[arg-type]

    def container(self, pool_size: int = 4) -> Container:
        container = build(self.settings(), clock=self.clock, pool_size=pool_size)
        self.containers.append(container)
        return container

    def worker(self, worker_id: str = "test-worker") -> Worker:
        """The world's worker of that id (one per id: a second would stand by as the leader lock says)."""
        for worker in self.workers:
            if worker.id == worker_id:
                return worker
        worker = Worker(self.container(pool_size=WORKER_POOL), worker_id)
        self.workers.append(worker)
        return worker

    def work_until(self, predicate: Callable[[], Any], timeout: float = 15.0, message: str = "condition") -> Any:
        """Run the worker's due jobs until ``predicate`` holds (a click's effects arrive after its ack)."""
        worker = self.worker()

        def worked() -> Any:
            worker.run_once()
            return predicate()

        return wait_until(worked, timeout, message)

    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        for container in self.containers:
            container.close()


def make_world(database_url: str, redis_url: str, tmp: Path, approvals: int = 1) -> World:
    slack = SlackEmulator(BOT_TOKEN).start()
    vercel = VercelEmulator(VERCEL_TOKEN, alias_delay=0.3).start()
    for user_id, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAN, "dan")):
        slack.add_user(user_id, name)
    for n, lead in enumerate(LEADS, start=1):
        slack.add_user(lead, f"lead{n}")
    slack.add_usergroup("S01LEADS", "leads", LEADS)
    slack.add_usergroup("S01ENG", "engineers", [])
    slack.add_usergroup("S01ONCALL", "oncall", [CAROL])
    vercel.seed_demo(PROJECT)
    config = tmp / "rollbot.toml"
    config.write_text(sandbox_policy(vercel.health_url(PROJECT), str(tmp / "backups"), approvals=approvals,
                                     lead_groups=["S01LEADS"],
                                     engineer_groups=["S01ENG"]))
    return World(slack, vercel, database_url, redis_url, config)


class BotServer:
    """`rollbot web` as a real subprocess (gunicorn, 2 workers) on a free loopback port."""

    def __init__(self, world: World, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._clients: list[SignedSlackClient] = []
        env = {**os.environ, **world.env(), "PYTHONUNBUFFERED": "1"}
        # Output goes to a file: a pipe nobody reads would block the server once it fills.
        self.log_path = world.config_path.parent / f"web-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "web", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                output = self.log_path.read_text(errors="replace")
                raise RuntimeError(f"rollbot web exited with {self.process.returncode}:\n{output[-4000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("rollbot web did not become healthy in 30s")
            time.sleep(0.1)

    def client(self, world: World) -> SignedSlackClient:
        client = SignedSlackClient(self.url + "/slack/events", SIGNING_SECRET, world.slack)
        self._clients.append(client)
        return client

    def stop(self) -> str:
        for client in self._clients:  # an idle kept-alive connection would hold gunicorn's stop for 2 s
            client.close()
        stop_process(self.process)
        self._log.close()
        return self.log_path.read_text(errors="replace")


def stop_process(process: subprocess.Popen[Any], timeout: float = 20) -> float:
    """SIGTERM, then wait; killed if it has not stopped within ``timeout``. Seconds it took to
    stop (infinity when it had to be killed)."""
    started = time.monotonic()
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return float("inf")
    return time.monotonic() - started


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed with prometheus_client's own parser: ``(name, sorted labels) -> value``."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
