"""The generic driver runs any kind: a kind that exists only in the test suite (a file-backed
switch, tests/kinds/switch.py), loaded through ROLLBOT_KINDS into the real web process and the
worker, goes through the whole flow over real HTTP: request, approve, execute, verify, monitor,
resolve, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sandbox.team import ALICE, CAROL, CHANNEL, PROJECT
from tests.kinds.switch import DIR_ENV
from tests.world import BotServer, World, wait_until


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or [], ensure_ascii=False) + (message.get("text") or "")


@pytest.fixture
def switches(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "switches"
    directory.mkdir()
    (directory / "checkout").write_text("on")
    (directory / "search").write_text("on")
    world.vercel.set_healthy(world.vercel.production(PROJECT), True)  # the environment's health check passes
    monkeypatch.setenv(DIR_ENV, str(directory))  # for the in-process worker; the web process inherits it
    world.extra_env["ROLLBOT_KINDS"] = "tests.kinds.switch:kind"
    world.config_path.write_text(world.config_path.read_text()
                                 + 'switch = { approvers = ["lead"], approvals = 1 }\n')
    yield directory


def test_a_kind_from_the_test_suite_runs_the_whole_flow(world: World, switches: Path) -> None:
    bot = BotServer(world)
    try:
        client = bot.client(world)
        assert client.command(ALICE, "help", channel_id=CHANNEL).status_code == 200
        assert any("/rollback switch" in _text(e) for e in world.slack.ephemerals(user=ALICE))

        client.command(ALICE, "sw prod checkout <!here> flaky", channel_id=CHANNEL)
        root = world.work_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="the root message")
        body = _text(root)
        assert "RB-1 · Switch rollback · prod" in body and "`on`" in body and "`off`" in body
        assert "1m · risk Low" in body and "&lt;!here&gt; flaky" in body

        client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
        world.work_until(lambda: any("Verified" in _text(m) for m in world.slack.thread(CHANNEL, root["ts"])),
                         message="verification")
        assert (switches / "checkout").read_text() == "off" and (switches / "search").read_text() == "on"
        progress = next(m for m in world.slack.thread(CHANNEL, root["ts"]) if "Progress" in _text(m))
        assert "Turn the switch off" in _text(progress) and "switch checkout reads off" in _text(
            next(m for m in world.slack.thread(CHANNEL, root["ts"]) if "Verified" in _text(m)))

        worker = world.worker()
        for _ in (1, 2, 3):
            world.advance(timedelta(minutes=5))
            worker.run_once()
        assert [len([m for m in world.slack.thread(CHANNEL, root["ts"]) if f"Monitoring {i}/3" in _text(m)])
                for i in (1, 2, 3)] == [1, 1, 1]

        final = [m for m in world.slack.thread(CHANNEL, root["ts"]) if "Monitoring 3/3" in _text(m)][0]
        client.click(CAROL, channel=CHANNEL, message_ts=final["ts"], action_id="resolve")
        view = wait_until(lambda: next((v for v in world.slack.views.values()
                                        if v.get("callback_id") == "resolve_modal"), None), message="the modal")
        client.submit_view(CAROL, view["id"], {
            "root_cause": {"value": {"type": "plain_text_input", "value": "flaky checkout"}},
            "lessons": {"value": {"type": "plain_text_input", "value": "switch earlier"}},
        })
        summary = wait_until(lambda: next((m for m in world.slack.messages(CHANNEL)
                                           if "Post-incident summary" in _text(m)), None), message="the summary")
        assert "Switch rollback" in _text(summary) and "`on` → `off`" in _text(summary)
    finally:
        output = bot.stop()
    assert "Traceback" not in output, output[-3000:]

    env = {**os.environ, **world.env()}
    report = subprocess.run([sys.executable, "-m", "bot.cli", "report", "RB-1", "--format", "json"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["kind"] == "switch" and data["status"] == "resolved" and data["plan"]["name"] == "checkout"
    assert [e["label"] for e in data["executed"]] == ["Turn the switch off", "Verify (read-back + health checks)"]
    assert ("rollbot", "switch.flip", "attempt") in {(e["actor"], e["action"], e["outcome"]) for e in data["audit_log"]}
    assert world.vercel.calls_to("POST", "/v1/") == []  # the code kind was never involved
    assert world.slack.validation_errors == []


def test_a_policy_rule_for_an_unknown_kind_stops_the_bot(world: World) -> None:
    world.config_path.write_text(world.config_path.read_text() + 'swtch = { approvers = ["lead"] }\n')
    env = {**os.environ, **world.env()}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "worker"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "environments.prod.policy.swtch: no rollback kind is named 'swtch' (known: code, flag, env, database, code+env)" in result.stderr


def test_a_kind_that_cannot_be_loaded_is_named(world: World) -> None:
    env = {**os.environ, **world.env(), "ROLLBOT_KINDS": "tests.kinds.nowhere:kind"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "worker"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "ROLLBOT_KINDS: cannot load 'tests.kinds.nowhere:kind' (ModuleNotFoundError" in result.stderr
