"""A production-shaped deployment for fault tests: two `rollbot web` processes (gunicorn) and two
`rollbot worker` processes on one Postgres and one Redis, the emulators on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg

from sandbox.slack_client import SignedSlackClient
from tests.world import BotServer, World, wait_until


def kill9(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and its children (gunicorn's master and workers), no goodbyes."""
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    for pid in [process.pid, *map(int, children)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)


class WorkerProcess:
    def __init__(self, world: World, n: int) -> None:
        self.log_path = world.config_path.parent / f"worker-{n}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"],
                                        env={**os.environ, **world.env(), "ROLLBOT_LOG_LEVEL": "INFO",
                                             "PYTHONUNBUFFERED": "1"},
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def leads(self) -> bool:
        lines = [line for line in self.output().splitlines() if "is the leader" in line or "is standing by" in line]
        return bool(lines) and "is the leader" in lines[-1]

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill9(self.process)
        self._log.close()
        return self.output()


class Cluster:
    def __init__(self, world: World, webs: int = 2, workers: int = 2) -> None:
        self.world = world
        self.webs: list[BotServer] = []
        self.workers: list[WorkerProcess] = []
        try:
            self.workers = [WorkerProcess(world, n) for n in range(workers)]
            self.webs = [BotServer(world, workers=1) for _ in range(webs)]
            wait_until(lambda: any(w.leads() for w in self.workers), timeout=30, message="a worker to lead")
            time.sleep(0.5)  # the leader's LISTEN is in place once it leads and ticked once
        except BaseException:
            self.stop()
            raise

    def client(self, i: int) -> SignedSlackClient:
        return self.webs[i].client(self.world)

    def leader(self) -> WorkerProcess:
        return next(w for w in self.workers if w.process.poll() is None and w.leads())

    def stop(self) -> str:
        """Stop everything; returns every process's output (for a Traceback check)."""
        outputs = []
        for web in self.webs:
            if web.process.poll() is None:
                outputs.append(web.stop())
            else:
                web._log.close()
                outputs.append(web.log_path.read_text(errors="replace"))
        outputs += [worker.stop() for worker in self.workers]
        return "\n".join(outputs)


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def identities(world: World, channel: str) -> list[tuple[int, str]]:
    """(incident, key) of every message the bot posted in ``channel``, in posting order."""
    found = []
    for message in world.slack.messages(channel):
        if message.get("bot_id"):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            found.append((payload.get("incident"), payload.get("key")))
    return found


def audit(world: World) -> list[tuple[str, str, str]]:
    with psycopg.connect(world.database_url) as conn:
        rows = conn.execute("SELECT actor, action, outcome FROM audit_log ORDER BY id").fetchall()
    return [tuple(r) for r in rows]


def status(world: World, incident_id: int = 1) -> str | None:
    with psycopg.connect(world.database_url) as conn:
        row = conn.execute("SELECT status FROM incidents WHERE id = %s", (incident_id,)).fetchone()
    return row[0] if row else None


def logs_clean(output: str) -> None:
    assert "Traceback" not in output, output[-4000:]


__all__ = ["Cluster", "WorkerProcess", "audit", "identities", "kill9", "logs_clean", "status", "text_of"]
