"""What a web worker loads while it answers: the app built as `bot.web_master` builds it in each
gunicorn worker, served over HTTP in a process of its own, asked for help, a code rollback and
its approval (the worker's part runs here). The Vercel client and the health checker are the
worker's; the web builds them, and imports httpx, only if a listener calls one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sandbox.slack_client import SignedSlackClient
from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.world import SIGNING_SECRET, World, stop_process

SERVE = """
import json, sys, threading
from wsgiref.simple_server import WSGIRequestHandler, make_server
from bot.web_master import RollbotWeb

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

app = RollbotWeb("127.0.0.1", 0, 1, 1).load()
server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_port, flush=True)
sys.stdin.readline()
print(json.dumps(sorted(m for m in ("httpx", "integrations.vercel", "integrations.health") if m in sys.modules)),
      flush=True)
"""


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def test_a_web_worker_answers_a_whole_rollback_without_loading_httpx(world: World) -> None:
    process = subprocess.Popen([sys.executable, "-c", SERVE], env={**os.environ, **world.env()},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdin is not None
        port = int(process.stdout.readline())
        with SignedSlackClient(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, world.slack) as client:
            assert client.command(ALICE, "help", channel_id=CHANNEL).status_code == 200
            assert client.command(ALICE, "code prod checkout returns 500", channel_id=CHANNEL).status_code == 200
            root = world.work_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="the root message")
            assert client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve").status_code == 200
            world.work_until(lambda: any("Verified" in _text(m) for m in world.slack.thread(CHANNEL, root["ts"])),
                             message="the verification")
        assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1
        process.stdin.write("done\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline()) == []
    finally:
        stop_process(process)  # type: ignore[arg-type]
