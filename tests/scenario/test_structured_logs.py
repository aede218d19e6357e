"""The logs of a whole rollback, as an operator's log search reads them: `rollbot web` and
`rollbot worker` at INFO, every line one JSON object, every line about the incident naming it,
its kind and its environment, the acting user on a request's lines, and no secret anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sandbox.team import ALICE, CAROL, CHANNEL
from tests.world import BOT_TOKEN, SECRET_KEY, SIGNING_SECRET, VERCEL_TOKEN, BotServer, World, wait_until


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]  # each one JSON, or this fails


def test_every_line_about_the_incident_names_it_and_no_line_holds_a_secret(world: World) -> None:
    world.extra_env["ROLLBOT_LOG_LEVEL"] = "INFO"
    worker_log = world.config_path.parent / "worker-logs.log"
    with open(worker_log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, **world.env()})
        bot = BotServer(world)
        try:
            client = bot.client(world)
            client.command(ALICE, "code prod checkout 500", channel_id=CHANNEL)
            root = wait_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), timeout=20, message="root")
            client.click(ALICE, channel=CHANNEL, message_ts=root["ts"], action_id="approve")  # refused: four eyes
            wait_until(lambda: any("four eyes" in _text(e) for e in world.slack.ephemerals(user=ALICE)),
                       message="refusal")
            client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
            wait_until(lambda: any("Verified" in _text(m) for m in world.slack.thread(CHANNEL, root["ts"])),
                       timeout=30, message="the rollback verified")
        finally:
            web_output = bot.stop()
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
    web, ours = _lines(bot.log_path), _lines(worker_log)
    about = [line for line in web + ours if line.get("incident") == "RB-1"]
    assert len(about) >= 5
    for line in about:
        assert (line.get("kind"), line.get("env")) == ("code", "prod"), line
        assert {"at", "level", "logger", "msg"} <= set(line), line
    refused = [line for line in web if line["msg"].startswith("audit approve refused")]
    approved = [line for line in web if line["msg"].startswith("audit approve ok")]
    assert [line.get("user") for line in refused] == [ALICE] and refused[0]["request"] == "action:approve"
    assert [line.get("user") for line in approved] == [CAROL]
    executed = [line for line in ours if line.get("job") == "execute"]
    assert executed and all(line["incident"] == "RB-1" for line in executed)
    planned = [line for line in ours if line.get("job") == "request"]
    assert planned and all(line.get("user") == ALICE for line in planned)
    everything = bot.log_path.read_text() + worker_log.read_text() + web_output
    for secret in (BOT_TOKEN, SIGNING_SECRET, VERCEL_TOKEN, SECRET_KEY):
        assert secret not in everything
