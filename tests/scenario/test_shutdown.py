"""`rollbot web` and `rollbot worker` stop promptly on SIGTERM, as a service manager expects,
on every supported Python: within a couple of seconds, with exit code 0 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from sandbox.team import ALICE, CHANNEL
from tests.world import BotServer, World, stop_process, wait_until

# Seconds from SIGTERM to the process having exited: about 0.5 s idle on the 2-core development
# machine, up to 2.5 s with a kept-alive connection (gunicorn keeps one open for up to 2 s after
# the signal, so a request already on its way is answered, not dropped). The bounds leave room for
# a loaded CI machine and still catch what they guard against: 20 s of joined threads at exit.
STOP_IDLE_WITHIN = 5.0
STOP_WITHIN = 8.0


def _stop_time(process: subprocess.Popen[bytes]) -> float:
    return stop_process(process, timeout=30)


def test_idle_web_stops_at_once(world: World) -> None:
    server = BotServer(world)
    try:
        elapsed = _stop_time(server.process)
    finally:
        output = server.stop()
    assert elapsed < STOP_IDLE_WITHIN, f"rollbot web took {elapsed:.1f}s to stop on {sys.version.split()[0]}"
    assert server.process.returncode == 0 and "Traceback" not in output, output[-3000:]


def test_web_stops_within_seconds_after_serving_requests(world: World) -> None:
    server = BotServer(world)
    try:
        # Serve real work first, including a kept-alive connection still open at the signal.
        server.client(world).command(ALICE, "help", channel_id=CHANNEL)
        keepalive = httpx.Client(base_url=server.url, trust_env=False, timeout=5)
        assert keepalive.get("/healthz").status_code == 200
        elapsed = _stop_time(server.process)
        keepalive.close()
    finally:
        output = server.stop()
    assert elapsed < STOP_WITHIN, f"rollbot web took {elapsed:.1f}s to stop on {sys.version.split()[0]}"
    assert server.process.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def test_worker_stops_within_seconds(world: World) -> None:
    env = {**os.environ, **world.env(), "ROLLBOT_LOG_LEVEL": "INFO"}
    worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    assert worker.stdout is not None
    lines: list[bytes] = []
    wait_until(lambda: lines.append(worker.stdout.readline()) or b"is the leader" in lines[-1], timeout=30,
               message="the worker to lead")
    elapsed = _stop_time(worker)
    output = b"".join(lines).decode() + worker.stdout.read().decode()
    assert elapsed < STOP_IDLE_WITHIN, f"rollbot worker took {elapsed:.1f}s to stop on {sys.version.split()[0]}"
    assert worker.returncode == 0, output
    assert "stopping" in output and "Traceback" not in output, output
