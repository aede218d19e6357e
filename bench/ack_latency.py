"""Ack latency benchmark: how fast does Rollbot answer Slack, relative to a baseline?

Slack gives an app 3 seconds to acknowledge. This starts `rollbot web` (gunicorn, 2 workers)
against embedded Postgres/Redis and the emulators, then times, over real loopback HTTP:

* baseline: `GET /healthz` (the server's floor: HTTP + WSGI, no Slack work)
* `/rollback help`, `/rollback status`, `/rollback nonsense` (signature check, parse, reply)
* `/rollback code prod …` (ack before the Vercel plan is resolved)
* Approve clicks, 20 at once (ack before the approval is decided)

and prints p50/p95 and each one's ratio to the baseline's p50. Ratios, not absolute times,
are what to compare across machines. Run: `.venvs/py3.X/bin/python -m bench.ack_latency`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ[_name] = ""

from integrations.schema import migrate  # noqa: E402
from sandbox.embedded import services_from_env  # noqa: E402
from sandbox.team import ALICE, CHANNEL  # noqa: E402
from tests.world import LEADS, BotServer, make_world, wait_until  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "60"))


def _timed(call: Callable[[], httpx.Response], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return samples


def _row(name: str, samples: list[float], base: float) -> str:
    p50 = statistics.median(samples)
    p95 = sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]
    return f"{name:<34} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   ratio {p50 / base:5.2f}x"


def main() -> int:
    database_url, redis_url, servers = services_from_env(os.environ)
    migrate(database_url)
    world = make_world(database_url, redis_url, Path(tempfile.mkdtemp(prefix="rollbot-bench-")))
    bot = BotServer(world)
    try:
        client = bot.client(world)
        http = httpx.Client(base_url=bot.url, trust_env=False)
        _timed(lambda: http.get("/healthz"), 20)  # warm up both workers
        _timed(lambda: client.command(ALICE, "help", channel_id=CHANNEL), 10)
        base = _timed(lambda: http.get("/healthz"), ROUNDS)
        base_p50 = statistics.median(base)
        rows = [_row("baseline GET /healthz", base, base_p50)]
        for text in ("help", "status", "nonsense"):
            rows.append(_row(f"/rollback {text}", _timed(lambda t=text: client.command(ALICE, t, channel_id=CHANNEL),
                                                          ROUNDS), base_p50))
        started = time.perf_counter()
        first = _timed(lambda: client.command(ALICE, "code prod bench", channel_id=CHANNEL), 1)
        root = wait_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="root")
        to_root = (time.perf_counter() - started) * 1000
        rows.append(_row("/rollback code prod (ack)", first, base_p50))
        rows.append(f"{'  … root message posted after':<34} {to_root:7.2f} ms")
        with ThreadPoolExecutor(max_workers=20) as pool:
            clicks = list(pool.map(lambda u: _timed(lambda: client.click(u, channel=CHANNEL, message_ts=root["ts"],
                                                                        action_id="approve"), 1)[0], LEADS))
        rows.append(_row("Approve x20 at once (ack)", clicks, base_p50))
        print(f"Rollbot ack latency, {ROUNDS} rounds, gunicorn 2 workers (Slack's limit: 3000 ms)")
        print("\n".join(rows))
        worst = max(max(clicks), max(first))
        print(f"worst ack: {worst:.1f} ms = {worst / 3000:.1%} of Slack's 3 s budget")
        return 0
    finally:
        bot.stop()
        world.slack.stop()
        world.vercel.stop()
        world.close()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
