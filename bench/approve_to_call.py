"""Approve click -> Vercel call: how long from the deciding click to the rollback request?

Production topology: `rollbot web` (gunicorn) takes the click, records the approval and
acknowledges; a separate `rollbot worker`, woken by Postgres NOTIFY, claims the execute job and
calls Vercel. Measured over real loopback HTTP against the emulators, on an idle machine, and
printed as p50/p95 with the click's own ack time beside it. Target: p50 under 200 ms.
Run: `.venvs/py3.X/bin/python -m bench.approve_to_call` (BENCH_ROUNDS, default 15).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ[_name] = ""

from integrations.schema import migrate  # noqa: E402
from sandbox.embedded import services_from_env  # noqa: E402
from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT  # noqa: E402
from tests.world import BotServer, make_world, wait_until  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
ROLLBACK = f"/v1/projects/{PROJECT}/rollback"


def _pct(samples: list[float], q: float) -> float:
    return sorted(samples)[max(0, int(len(samples) * q) - 1)]


def main() -> int:
    database_url, redis_url, servers = services_from_env(os.environ)
    migrate(database_url)
    world = make_world(database_url, redis_url, Path(tempfile.mkdtemp(prefix="rollbot-bench-")))
    world.config_path.write_text(world.config_path.read_text().replace('tick = "1s"', 'tick = "60s"'))
    bad = world.vercel.production(PROJECT)
    log = open(world.config_path.parent / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env={**os.environ, **world.env()},
                              stdout=log, stderr=subprocess.STDOUT)
    bot = BotServer(world)
    to_call: list[float] = []
    acks: list[float] = []
    try:
        client = bot.client(world)
        for n in range(1, ROUNDS + 1):
            world.vercel.set_production(PROJECT, bad)
            client.command(ALICE, f"code prod bench round {n}", channel_id=CHANNEL)
            root = wait_until(lambda n=n: next((m for m in world.slack.messages(CHANNEL)
                                                if f"RB-{n} " in json.dumps(m.get("blocks"))), None),
                              message=f"RB-{n}")
            time.sleep(0.3)  # idle: the request's own work is done
            before = len(world.vercel.calls_to("POST", ROLLBACK))
            started = time.time()
            response = client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
            acks.append((time.time() - started) * 1000)
            assert response.status_code == 200
            call = wait_until(lambda b=before: world.vercel.calls_to("POST", ROLLBACK)[b:], message="the call")[0]
            to_call.append((call["at"] - started) * 1000)
            wait_until(lambda r=root: any("Verified" in json.dumps(m.get("blocks"))
                                          for m in world.slack.thread(CHANNEL, r["ts"])), message="verified")
        print(f"Approve click -> Vercel rollback call, {ROUNDS} rounds (web and worker processes, idle machine)")
        print(f"  click ack             p50 {statistics.median(acks):7.1f} ms   p95 {_pct(acks, 0.95):7.1f} ms")
        print(f"  click -> Vercel call  p50 {statistics.median(to_call):7.1f} ms   p95 {_pct(to_call, 0.95):7.1f} ms"
              "   (target: p50 under 200 ms)")
        return 0
    finally:
        bot.stop()
        worker.terminate()
        worker.wait(timeout=20)
        log.close()
        world.slack.stop()
        world.vercel.stop()
        world.close()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
