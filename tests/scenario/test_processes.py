"""The entry points as an operator runs them: `rollbot web` endpoints, `rollbot worker`,
`rollbot check-config`, `rollbot manifest`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

from handlers import approvals
from handlers.commands import Rollback
from handlers.execution import execute
from handlers.requests import request_rollback
from integrations.cores import cores_of, threads
from sandbox.team import ALICE, CAROL, CHANNEL
from tests.world import BotServer, World, metric_samples, wait_until


def test_health_readiness_and_metrics(world: World, bot: BotServer) -> None:
    with httpx.Client(base_url=bot.url, trust_env=False, timeout=5) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "postgres": "ok", "redis": "ok"}
        bot.client(world).command(ALICE, "help", channel_id=CHANNEL)
        scraped = http.get("/metrics")
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        metrics = metric_samples(scraped.text)
        assert metrics[("rollbot_open_incidents", ())] == 0
        assert metrics[("rollbot_incidents", (("drill", "false"), ("status", "pending")))] == 0
        # prometheus_client's multiprocess mode: whichever gunicorn worker answers the scrape
        # reports every worker's requests (this one, and the scrape's own do not count).
        assert metrics[("rollbot_slack_requests_total", (("kind", "/rollback"),))] == 1
        assert http.get("/nope").status_code == 404


def _nice(pid: int) -> int:
    """A process's nice value, as the kernel reports it (field 19 of /proc/<pid>/stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_worker_process_sends_due_reminders(world: World) -> None:
    svc = world.container().services
    incident = request_rollback(svc, ALICE, Rollback("code", "prod", "slow pages"))
    approvals.approve(svc, CAROL, incident.id, incident.plan_hash)
    execute(svc, incident.id)
    # Make the first reminder due now, then let a real `rollbot worker` process find it.
    svc.store.cancel_jobs(incident.id, "monitor")
    svc.store.schedule(incident.id, "monitor", svc.clock.now() - timedelta(seconds=1), {"index": 1, "total": 3})
    env = {**os.environ, **world.env(), "ROLLBOT_LOG_LEVEL": "INFO"}
    worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    second = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: any("Monitoring 1/3" in json.dumps(m.get("blocks"))
                               for m in world.slack.thread(CHANNEL, incident.root_ts)), timeout=20,
                   message="the reminder from the worker process")
        niced = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)  # ROLLBOT_WORKER_NICE's default
        wait_until(lambda: [_nice(p.pid) for p in (worker, second)] == [niced] * 2, timeout=20,
                   message="both workers at a lower CPU priority")
        allowed = os.sched_getaffinity(0)
        if len(allowed) > 1:  # ROLLBOT_WORKER_ONE_CORE's default: every thread of each on one core
            wait_until(lambda: all(len(on := cores_of(threads(p.pid))) == 1 and on <= allowed for p in (worker, second)),
                       timeout=20, message="each worker's threads on one core")
        time.sleep(2.5)  # two more ticks: an accidental second worker must not send it again
        reminders = [m for m in world.slack.thread(CHANNEL, incident.root_ts) if "Monitoring 1/3" in json.dumps(m.get("blocks"))]
        assert len(reminders) == 1
    finally:
        for process in (worker, second):
            process.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=20)[0].decode() for p in (worker, second)]
    assert sum("is the leader" in out for out in outputs) == 1, outputs
    assert sum("is standing by" in out for out in outputs) <= 1 and all("stopping" in out for out in outputs)
    assert not any("Traceback" in out for out in outputs), outputs


def test_check_config_pings_everything(world: World, target: str) -> None:
    env = {**os.environ, **world.env()}
    ok = subprocess.run([sys.executable, "-m", "bot.cli", "check-config"], env=env, capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for name in ("environment", "policy", "postgres", "redis", "slack", "vercel (prod)"):
        assert f"ok    {name}" in ok.stdout
    assert "ok    database (prod): $DEMO_DATABASE_URL: PostgreSQL" in ok.stdout
    assert "4 migrations applied, 4 in" in ok.stdout and "(3 with reverse SQL); backups with pg_dump" in ok.stdout
    unset = subprocess.run([sys.executable, "-m", "bot.cli", "check-config"],
                           env={k: v for k, v in env.items() if k != "DEMO_DATABASE_URL"}, capture_output=True,
                           text=True, timeout=60)
    assert unset.returncode == 1 and "FAIL  database (prod): DEMO_DATABASE_URL is not set" in unset.stdout
    bad = {**env, "SLACK_BOT_TOKEN": "xoxb-wrong", "REDIS_URL": "redis://127.0.0.1:1/0"}
    bad.pop("VERCEL_TOKEN")
    failed = subprocess.run([sys.executable, "-m", "bot.cli", "check-config"], env=bad, capture_output=True,
                            text=True, timeout=60)
    assert failed.returncode == 1
    assert "FAIL  environment: missing VERCEL_TOKEN" in failed.stdout
    assert "FAIL  slack: Slack refused: invalid_auth" in failed.stdout
    assert "FAIL  redis: cannot reach REDIS_URL" in failed.stdout
    assert "xoxb-wrong" not in failed.stdout + failed.stderr


def test_a_secret_key_is_made_by_the_cli_and_checked_by_check_config(world: World) -> None:
    made = subprocess.run([sys.executable, "-m", "bot.cli", "secret-key"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0 and len(made.stdout.strip()) == 44
    env = {**os.environ, **world.env(), "ROLLBOT_SECRET_KEY": made.stdout.strip()}
    ok = subprocess.run([sys.executable, "-m", "bot.cli", "check-config"], env=env, capture_output=True, text=True,
                        timeout=60)
    assert "ok    ROLLBOT_SECRET_KEY: 1 key(s)" in ok.stdout, ok.stdout
    bad = subprocess.run([sys.executable, "-m", "bot.cli", "check-config"],
                         env={**env, "ROLLBOT_SECRET_KEY": "hunter2-not-a-key"}, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and "FAIL  ROLLBOT_SECRET_KEY: ROLLBOT_SECRET_KEY must be Fernet keys" in bad.stdout
    assert "hunter2" not in bad.stdout + bad.stderr
    unset = {k: v for k, v in env.items() if k != "ROLLBOT_SECRET_KEY"}
    missing = subprocess.run([sys.executable, "-m", "bot.cli", "check-config"], env=unset, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 1 and "FAIL  ROLLBOT_SECRET_KEY: not set, but prod take(s) env-var snapshots" \
        in missing.stdout, missing.stdout


def test_snapshots_are_re_encrypted_by_the_cli_and_a_wrong_key_is_caught_by_check_config(world: World) -> None:
    def cli(*args: str, key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot.cli", *args], env={**os.environ, **world.env(),
                              "ROLLBOT_SECRET_KEY": key}, capture_output=True, text=True, timeout=60)

    old = world.env()["ROLLBOT_SECRET_KEY"]
    world.worker().run_once()  # the scheduled snapshot, sealed with the old key
    new = cli("secret-key", key=old).stdout.strip()
    checked = cli("check-config", key=new)
    assert checked.returncode == 1 and "FAIL  ROLLBOT_SECRET_KEY: ROLLBOT_SECRET_KEY cannot decrypt" in checked.stdout
    refused = cli("rotate-secret-key", key=new)
    assert refused.returncode == 2 and "cannot" in refused.stderr and "nothing was changed" in refused.stderr
    rotated = cli("rotate-secret-key", key=f"{new},{old}")
    assert rotated.returncode == 0 and "re-encrypted 1 env-var snapshot(s)" in rotated.stdout, rotated.stderr
    after = cli("check-config", key=new)
    assert "ok    ROLLBOT_SECRET_KEY: 1 key(s); the first encrypts, every one decrypts; it opens the newest " \
        "snapshot (S-1)" in after.stdout, after.stdout
    assert old not in after.stdout + rotated.stdout + refused.stderr and new not in checked.stdout


def test_bad_policy_file_stops_the_web_server_with_a_clear_message(world: World) -> None:
    world.config_path.write_text(world.config_path.read_text().replace('monitor = ["5m"', 'monitor = ["5x"'))
    env = {**os.environ, **world.env()}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "check-config"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "environments.prod.monitor.0: '5x' is not a duration" in result.stdout


def test_manifest_variants() -> None:
    http = json.loads(subprocess.run([sys.executable, "-m", "bot.cli", "manifest", "--url", "https://rb.example.com"],
                                     capture_output=True, text=True, timeout=60, check=True).stdout)
    assert http["features"]["slash_commands"][0]["url"] == "https://rb.example.com/slack/events"
    assert http["settings"]["socket_mode_enabled"] is False
    socket = json.loads(subprocess.run([sys.executable, "-m", "bot.cli", "manifest"], capture_output=True, text=True,
                                       timeout=60, check=True).stdout)
    assert socket["settings"]["socket_mode_enabled"] is True and "url" not in socket["features"]["slash_commands"][0]
    # Exactly the scopes the bot uses: posting, commands, user groups (roles), and reading a
    # channel or thread back after a post whose outcome is unknown.
    assert sorted(http["oauth_config"]["scopes"]["bot"]) == [
        "channels:history", "channels:join", "chat:write", "chat:write.public", "commands", "groups:history",
        "usergroups:read"]
    # Follow-up reminders are DMs (chat.postMessage to the owner's ID): shown in the Messages tab,
    # which people cannot write to; no im:* scope is needed.
    assert http["features"]["app_home"] == {"home_tab_enabled": True, "messages_tab_enabled": True,
                                            "messages_tab_read_only_enabled": True}


def test_cli_errors_are_one_clear_line_without_secrets(tmp_path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": "postgres//rollbot:S3cretPW@db/rollbot"}
    migrate = subprocess.run([sys.executable, "-m", "bot.cli", "migrate"], env=env, capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
    assert migrate.returncode == 1
    assert "S3cretPW" not in migrate.stdout + migrate.stderr and "Traceback" not in migrate.stderr
    assert "rollbot migrate: ProgrammingError" in migrate.stderr
    web = subprocess.run([sys.executable, "-m", "bot.cli", "web", "--port", "1"],
                         env={"PATH": env["PATH"], "SLACK_BOT_TOKEN": "xoxb-secret-value"}, capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert web.returncode == 2
    assert "missing environment variables: SLACK_SIGNING_SECRET, DATABASE_URL, REDIS_URL, VERCEL_TOKEN" in web.stderr
    assert "xoxb-secret-value" not in web.stdout + web.stderr and "Traceback" not in web.stderr


def test_socket_mode_needs_an_app_token(world: World) -> None:
    env = {**os.environ, **world.env()}
    env.pop("SLACK_APP_TOKEN", None)
    result = subprocess.run([sys.executable, "-m", "bot.cli", "socket"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "SLACK_APP_TOKEN (xapp-…) is required for Socket Mode" in result.stderr
