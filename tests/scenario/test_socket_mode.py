"""`rollbot socket` really works: the real process connects to a local WebSocket server that
speaks Slack's Socket Mode (sandbox.socket_mode: `apps.connections.open`, hello, envelopes,
acks, refresh and reconnect), and takes a slash command, a modal (with its validation answered in
the ack) and buttons; a redelivered click counts once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from sandbox.slack_client import SignedSlackClient
from sandbox.socket_mode import SocketModeServer, SocketModeUser
from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.world import SIGNING_SECRET, World, free_port, metric_samples, stop_process, wait_until

APP_TOKEN = "xapp-1-A0ROLLBOT-test-app-level-token"


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def socket_app(world: World, metrics_port: int) -> Iterator[tuple[SocketModeServer, SocketModeUser]]:
    server = SocketModeServer().start()
    world.slack.attach_socket_mode(server, APP_TOKEN)
    log_path = world.config_path.parent / "socket.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "bot.cli", "socket"], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **world.env(), "SLACK_APP_TOKEN": APP_TOKEN,
                                        "ROLLBOT_LOG_LEVEL": "INFO", "PORT": str(metrics_port),
                                        "ROLLBOT_METRICS_HOST": "127.0.0.1"})
        payloads = SignedSlackClient("http://127.0.0.1:9/unused", SIGNING_SECRET, world.slack)
        try:
            server.wait_handshakes(1, timeout=30)
            yield server, SocketModeUser(server, payloads)
        finally:
            stop_process(process)
            payloads.close()
            server.stop()
    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]
    assert APP_TOKEN not in output and "xoxb-" not in output


def test_a_command_a_modal_and_buttons_over_socket_mode(world: World, metrics_port: int,
                                                        socket_app: tuple[SocketModeServer, SocketModeUser]) -> None:
    server, user = socket_app
    # The slash command: acknowledged in the envelope's ack, its answer shown to the user alone.
    ack = user.command(ALICE, "code prod checkout 500", channel_id=CHANNEL)
    assert "Planning a code rollback on *prod*" in ack["payload"]["text"]
    assert not user.again().get("payload")  # Slack delivers the same invocation again: acknowledged, not planned
    first = world.work_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="the root message")
    world.work_until(lambda: True, message="the worker's turn")  # a second request would be planned (and refused) now
    with psycopg.connect(world.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM due_jobs WHERE kind = 'request'").fetchone()[0] == 1
    assert not [e for e in world.slack.ephemerals(user=ALICE) if "still pending" in _text(e)]

    # A button that opens a modal; the modal's validation comes back in the submission's ack.
    user.click(CAROL, channel=CHANNEL, message_ts=first["ts"], action_id="deny")
    modal = wait_until(lambda: next((v for v in world.slack.views.values() if v["user"] == CAROL), None),
                       message="the deny modal")
    empty = user.submit_view(CAROL, modal["id"], {"reason": {"value": {"type": "plain_text_input", "value": " "}}})
    assert empty["payload"]["response_action"] == "errors" and "reason" in empty["payload"]["errors"]
    done = user.submit_view(CAROL, modal["id"], {"reason": {"value": {"type": "plain_text_input",
                                                                         "value": "fixing forward"}}})
    assert not done.get("payload")  # an empty ack closes the modal
    wait_until(lambda: "Denied by <@U01CAROL>" in _text(world.slack.message(CHANNEL, first["ts"])), message="denied")

    # Slack refreshes the connection: the app says hello again on a new ticket, and carries on.
    server.refresh()
    server.wait_handshakes(2, timeout=30)
    assert len([c for c in world.slack.calls if c["method"] == "apps.connections.open"]) >= 2
    assert server.refused == 0  # every connection came with a ticket of its own

    user.command(ALICE, "code prod checkout still 500", channel_id=CHANNEL)
    second = world.work_until(lambda: next((m for m in world.slack.messages(CHANNEL) if m["ts"] != first["ts"]
                                            and "approve" in json.dumps(m.get("blocks"))), None),
                              message="the second root message")
    user.click(CAROL, channel=CHANNEL, message_ts=second["ts"], action_id="approve")
    user.again()  # Slack delivers the same click again: acknowledged, and nothing more
    world.work_until(lambda: any("Verified" in _text(m) for m in world.slack.thread(CHANNEL, second["ts"])),
                     timeout=30, message="the rollback verified")
    assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1
    assert not [e for e in world.slack.ephemerals(user=CAROL) if "already" in _text(e)]
    with psycopg.connect(world.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM approvals").fetchone()[0] == 1
    # `rollbot socket` serves its own /metrics on PORT: its acks, its approvals, the Postgres gauges.
    scraped = metric_samples(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5, trust_env=False).text)
    assert scraped[("rollbot_slack_ack_seconds_count", (("kind", "command:code"),))] == 3  # two, one delivered twice
    assert scraped[("rollbot_slack_ack_seconds_count", (("kind", "action:approve"),))] == 2  # the click, and again
    assert scraped[("rollbot_approvals_total", (("decided", "true"), ("env", "prod"), ("kind", "code")))] == 1
    assert scraped[("rollbot_incidents", (("drill", "false"), ("status", "denied")))] == 1
