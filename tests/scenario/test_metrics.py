"""`/metrics` after a whole rollback, as Prometheus scrapes it: `rollbot web` (gunicorn, two
workers, prometheus_client's multiprocess mode) and `rollbot worker` (its own port), each parsed
with prometheus_client's own parser."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx

from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.world import BotServer, World, free_port, metric_samples, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


def _sum(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(value for (series, have), value in samples.items()
               if series == name and set(labels.items()) <= set(have))


def _scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=5, trust_env=False)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return metric_samples(response.text)


def test_a_rollback_shows_in_the_web_and_the_worker_metrics(world: World, bot: BotServer) -> None:
    port = free_port()
    log = open(world.config_path.parent / "worker-metrics.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, **world.env(), "ROLLBOT_WORKER_METRICS_PORT": str(port),
                                   "ROLLBOT_METRICS_HOST": "127.0.0.1",
                                   "PROMETHEUS_MULTIPROC_DIR": str(world.config_path.parent)})
    try:
        client = bot.client(world)
        client.command(ALICE, "code prod checkout 500", channel_id=CHANNEL)
        root = wait_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), timeout=20, message="root")
        client.click(ALICE, channel=CHANNEL, message_ts=root["ts"], action_id="approve")  # four eyes: refused
        wait_until(lambda: any("four eyes" in _text(e) for e in world.slack.ephemerals(user=ALICE)), message="refusal")
        client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
        wait_until(lambda: any("Verified" in _text(m) for m in world.slack.thread(CHANNEL, root["ts"])), timeout=30,
                   message="the rollback verified")
        time.sleep(0.5)  # the worker's last calls of the rollback (the root's redraw) are counted

        web = _scrape(bot.url + "/metrics")
        assert _sum(web, "rollbot_slack_ack_seconds_count", kind="command:code") == 1
        assert _sum(web, "rollbot_slack_ack_seconds_count", kind="action:approve") == 2
        assert _sum(web, "rollbot_slack_ack_seconds_bucket", kind="action:approve", le="3.0") == 2  # inside Slack's 3 s
        assert _sum(web, "rollbot_slack_request_seconds_count", kind="action:approve") == 2
        assert _sum(web, "rollbot_refusals_total", action="approve", code="self_approval") == 1
        assert _sum(web, "rollbot_approvals_total", kind="code", env="prod", decided="true") == 1
        assert _sum(web, "rollbot_incidents", status="monitoring", drill="false") == 1  # the Postgres gauges
        assert _sum(web, "rollbot_jobs_waiting", state="dead") == 0

        ours = _scrape(f"http://127.0.0.1:{port}/metrics")
        assert _sum(ours, "rollbot_rollbacks_total", kind="code", env="prod", outcome="verified") == 1
        assert _sum(ours, "rollbot_time_to_rollback_seconds_count", kind="code", env="prod") == 1
        # Requested and rolled back within seconds: within the code kind's 5-minute target.
        assert _sum(ours, "rollbot_time_to_rollback_target_ratio_bucket", kind="code", env="prod", le="1.0") == 1
        assert _sum(ours, "rollbot_jobs_claimed_total", kind="execute") == 1
        assert _sum(ours, "rollbot_jobs_total", kind="request", outcome="done") == 1
        rollback_path = "POST /v1/projects/{id}/rollback/{id}"
        assert len(world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")) == 1
        assert _sum(ours, "rollbot_provider_call_seconds_count", provider="vercel", method=rollback_path,
                    status="201") + _sum(ours, "rollbot_provider_call_seconds_count", provider="vercel",
                                         method=rollback_path, status="200") == 1
        assert _sum(ours, "rollbot_provider_call_seconds_count", provider="slack", method="chat.postMessage",
                    status="ok") >= 2  # the root message, the thread's progress and verification
        assert _sum(ours, "rollbot_provider_call_errors_total") == 0
        assert _sum(ours, "rollbot_slack_ack_seconds_count") == 0  # the worker's own, never the web's
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
        log.close()
