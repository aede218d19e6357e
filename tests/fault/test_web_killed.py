"""No web process has to survive a rollback: every web process is killed the moment the deciding
click is acknowledged, and a real `rollbot worker`, woken by Postgres NOTIFY (its tick is a
minute here), rolls back exactly once within seconds, and the thread says so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.fault.cluster import kill9
from tests.world import BotServer, World, wait_until


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


@pytest.mark.reliability("fault", "kill -9 of every web process at the deciding ack")
def test_the_rollback_completes_when_every_web_process_dies_at_the_deciding_ack(world: World) -> None:
    world.config_path.write_text(world.config_path.read_text().replace('tick = "1s"', 'tick = "60s"'))
    log = open(world.config_path.parent / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env={**os.environ, **world.env(),
                              "ROLLBOT_LOG_LEVEL": "INFO"}, stdout=log, stderr=subprocess.STDOUT)
    bot = BotServer(world)
    try:
        client = bot.client(world)
        client.command(ALICE, "code prod checkout is down", channel_id=CHANNEL)
        root = wait_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="the root message")
        wait_until(lambda: "is the leader" in (world.config_path.parent / "worker.log").read_text(),
                   message="the worker to lead")
        time.sleep(0.5)  # the worker's LISTEN is in place once it leads and ticked once

        response = client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
        assert response.status_code == 200
        kill9(bot.process)  # master and every gunicorn worker, at the ack
        killed_at = time.monotonic()

        verified = wait_until(lambda: next((m for m in world.slack.thread(CHANNEL, root["ts"])
                                            if "Verified" in _text(m)), None), timeout=20, message="verification")
        assert time.monotonic() - killed_at < 10  # within seconds: woken by NOTIFY, not a 60 s tick
        assert "production serves" in _text(verified)
        time.sleep(1.0)  # any second execution would show itself now
        assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1
        progress = [m for m in world.slack.thread(CHANNEL, root["ts"]) if "Progress" in _text(m)]
        assert len(progress) == 1
    finally:
        bot.stop()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
        log.close()
    output = (world.config_path.parent / "worker.log").read_text()
    assert "Traceback" not in output, output[-3000:]
