"""200 monitoring reminders due at once, in 200 channels: how long until the worker sent them all?

The real worker pass (its bounded pool, the real Slack pacing, the message ledger, fresh health
checks for each) against the emulators over loopback HTTP, real Postgres and Redis. Printed as
seconds and as a ratio to the target (3 s). Run: `.venvs/py3.X/bin/python -m bench.reminders`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ[_name] = ""

from integrations.schema import migrate  # noqa: E402
from sandbox.embedded import services_from_env  # noqa: E402
from tests.integration.test_worker_throughput import COUNT, _monitored_incidents  # noqa: E402
from tests.world import make_world  # noqa: E402

TARGET_SECONDS = 3.0


def main() -> int:
    database_url, redis_url, servers = services_from_env(os.environ)
    migrate(database_url)
    world = make_world(database_url, redis_url, Path(tempfile.mkdtemp(prefix="rollbot-bench-")))
    try:
        _monitored_incidents(world, COUNT)
        world.advance(timedelta(seconds=1))
        worker = world.worker()
        started = time.monotonic()
        ran = worker.run_once()
        elapsed = time.monotonic() - started
        sent = [m for m in world.slack.messages() if "Monitoring 1/3" in json.dumps(m.get("blocks"))]
        print(f"{COUNT} reminders due at once in {COUNT} channels: {ran} jobs ran, {len(sent)} reminders posted")
        print(f"  all sent in {elapsed:.2f} s   ratio to the {TARGET_SECONDS:g} s target: {elapsed / TARGET_SECONDS:.2f}")
        return 0 if len(sent) == COUNT else 1
    finally:
        world.close()
        world.slack.stop()
        world.vercel.stop()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
