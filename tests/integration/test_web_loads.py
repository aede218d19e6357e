"""What a web worker loads while it answers: the app built as `bot.web_master` builds it in each
gunicorn worker, served over HTTP in a process of its own, asked for help, a code rollback and
its approval (the worker's part runs here). The Vercel client and the health checker are the
worker's; the web builds them, and imports httpx, only when a listener calls one: the Decide
form's suggestions read Vercel's variables."""

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
for _line in sys.stdin:  # the test asks what is loaded now
    print(json.dumps(sorted(m for m in ("httpx", "integrations.vercel", "integrations.health") if m in sys.modules)),
          flush=True)
"""


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def _view(world: World, callback_id: str) -> dict:
    return world.work_until(lambda: next((v for v in world.slack.views.values() if v.get("callback_id") == callback_id),
                                         None), message=f"the {callback_id} view")


def _loaded(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("loaded?\n")
    process.stdin.flush()
    return list(json.loads(process.stdout.readline()))


def test_a_web_worker_answers_a_whole_rollback_without_loading_httpx(world: World) -> None:
    world.worker().run_once()  # a snapshot of the variables, for the Decide form's suggestion below
    world.vercel.set_env_value(PROJECT, "API_URL", "https://api.demo-shop.test/broken")
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
            assert _loaded(process) == []

            assert client.command(ALICE, "decide", channel_id=CHANNEL).status_code == 200
            matrix = _view(world, "decide_modal")
            client.click_in_view(ALICE, matrix["id"], "decide_issue", "Security")
            world.work_until(lambda: "Recommended:* code + env" in json.dumps(world.slack.views[matrix["id"]]),
                             message="the recommendation")
            client.click_in_view(ALICE, matrix["id"], "decide_start", "Security|High")
            form = _view(world, "decided_request")
            world.work_until(lambda: any(b.get("block_id") == "args-env-filled"
                                         for b in world.slack.views[form["id"]]["blocks"]), message="the suggestion")
            assert _loaded(process) == ["httpx", "integrations.vercel"]  # built on first use; health checks are not
    finally:
        stop_process(process)
