"""`/rollback decide` end to end, through the real HTTP app, the worker, the Slack emulator and the
Vercel emulator: the matrix modal records the issue type and severity, one button opens the
recommended rollback filled in, and Security runs code and config under one incident
with one approval, executed in order and each verified, measured against the row's 10 minutes."""

from __future__ import annotations

import json

from handlers import resolution
from handlers.model import Status
from handlers.summary import render_markdown
from sandbox.team import ALICE, BOB, CAROL, CHANNEL, PROJECT
from tests.world import BotServer, World, wait_until

GOOD, BAD = "https://api.demo-shop.test/v2", "https://api.demo-shop.test/broken-by-a-config-push"
ENV = f"/v9/projects/{PROJECT}/env/"


def _text(message: dict) -> str:
    return json.dumps(message.get("blocks") or [], ensure_ascii=False) + (message.get("text") or "")


def _view(world: World, callback_id: str, user: str) -> dict:
    return wait_until(lambda: next((v for v in reversed(list(world.slack.views.values()))
                                    if v.get("callback_id") == callback_id and v.get("user") == user), None),
                      message=f"the {callback_id} view")


def _block(view: dict, prefix: str) -> dict:
    return next(b for b in view["blocks"] if str(b.get("block_id", "")).startswith(prefix))


def test_decide_starts_the_security_row_as_one_code_and_env_rollback(world: World, bot: BotServer) -> None:
    world.worker().run_once()  # the scheduled env-var snapshot holds the good value
    world.vercel.set_env_value(PROJECT, "API_URL", BAD)  # the leaked-config push
    serving_before = world.vercel.production(PROJECT)
    client = bot.client(world)

    assert client.command(ALICE, "decide", channel_id=CHANNEL).status_code == 200
    matrix = _view(world, "decide_modal", ALICE)
    assert "Feature broken (Medium)" in _text(matrix)
    client.click_in_view(ALICE, matrix["id"], "decide_issue", "Security")
    wait_until(lambda: "Recommended:* code + env rollback" in _text(world.slack.views[matrix["id"]]),
               message="the recommendation")
    chosen = world.slack.views[matrix["id"]]
    assert "target 10m" in _text(chosen) and "risk Low" in _text(chosen)
    client.click_in_view(ALICE, matrix["id"], "decide_severity", "High")
    wait_until(lambda: "the incident records High" in _text(world.slack.views[matrix["id"]]), message="severity")
    start = client.find_action(world.slack.views[matrix["id"]], "decide_start")
    assert start["value"] == "Security|High"  # the severity chosen travels with the row
    client.click_in_view(ALICE, matrix["id"], "decide_start", start["value"])

    # The form opens at once, then Rollbot fills in what changed since the last snapshot.
    form = _view(world, "decided_request", ALICE)
    wait_until(lambda: _block(world.slack.views[form["id"]], "args-env")["block_id"] == "args-env-filled",
               message="suggestions")
    form = world.slack.views[form["id"]]
    env_block, code_block = _block(form, "args-env"), _block(form, "args-code")
    assert code_block["block_id"] == "args-code"  # not filled in: what is typed there stays
    assert env_block["element"]["initial_value"] == "API_URL"
    assert "initial_value" not in code_block["element"]  # empty: the last known good deployment
    assert form["blocks"][1]["element"]["initial_option"]["value"] == "prod"

    # A bad field is named on the form, and nothing starts.
    typo = {"env": {"decided_env": {"type": "static_select", "selected_option": {"value": "prod"}}},
            code_block["block_id"]: {"value": {"type": "plain_text_input", "value": ""}},
            env_block["block_id"]: {"value": {"type": "plain_text_input", "value": "api_url"}},
            "reason": {"value": {"type": "plain_text_input", "value": "a token leaked in the build"}}}
    refused = client.submit_view(ALICE, form["id"], typo).json()
    assert refused["response_action"] == "errors" and "UPPER_CASE" in refused["errors"][env_block["block_id"]]
    assert world.slack.messages(CHANNEL) == []

    good = {**typo, env_block["block_id"]: {"value": {"type": "plain_text_input", "value": "API_URL"}}}
    assert client.submit_view(ALICE, form["id"], good).json() == {"response_action": "clear"}
    root = world.work_until(lambda: next(iter(world.slack.messages(CHANNEL)), None), message="the root message")
    shown = _text(root)
    assert "Code + Env-var rollback" in shown and "Security · severity High" in shown and "10m · risk Low" in shown
    assert "1. Code" in shown and "2. Env" in shown and "API_URL" in shown
    assert world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback") == []

    # One approval for the combined plan; the worker runs code, verifies it, then env, verifies it.
    assert client.click(BOB, channel=CHANNEL, message_ts=root["ts"], action_id="approve").status_code == 200
    wait_until(lambda: any("does not count" in _text(e) for e in world.slack.ephemerals(user=BOB)),
               message="an engineer cannot approve")
    client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
    verified = world.work_until(lambda: next((m for m in world.slack.thread(CHANNEL, root["ts"])
                                              if "Env-var rollback: API_URL read back" in _text(m)), None),
                                timeout=60, message="the verification of both parts")
    [rollback] = world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback")
    target = rollback["path"].rsplit("/", 1)[-1]
    [redeploy] = world.vercel.calls_to("POST", "/v13/deployments")
    assert redeploy["body"]["deploymentId"] == target != serving_before  # the good code, not the bad one
    assert world.vercel.calls.index(rollback) < world.vercel.calls.index(world.vercel.calls_to("PATCH", ENV)[0])
    rebuilt = world.vercel.production(PROJECT)
    assert world.vercel.env_at_build[rebuilt]["API_URL"] == GOOD
    # The code part was read back before the env part rebuilt it; the env part's read-back shows
    # what production serves now (the good code with the restored variable).
    assert "Code rollback: read back before the env part built on it" in _text(verified)
    assert f"production serves {rebuilt}" in _text(verified) and "failed" not in _text(verified)

    # Recorded with its row, and measured against the row's 10 minutes, not the code kind's 5.
    container = world.container()
    try:
        svc = container.services
        incident = svc.store.get(1)
        assert incident is not None and (incident.issue, incident.severity) == ("Security", "High")
        assert incident.status is Status.MONITORING and incident.failure is None
        resolution.resolve(svc, CAROL, 1, "a token leaked into the build config", "scan builds for secrets")
        summary = svc.store.summary(1)
        assert summary is not None and (summary.target, summary.issue, summary.severity) == ("10m", "Security", "High")
        assert "decision matrix: Security, severity High" in render_markdown(summary)
        audit = [(e.action, e.detail.get("issue"), e.detail.get("severity")) for e in svc.store.audit_log(1)]
        assert ("request.code+env", "Security", "High") in audit
    finally:
        container.close()
    assert world.slack.validation_errors == []


def test_a_malformed_or_stale_form_is_answered_on_the_form_and_starts_nothing(world: World, bot: BotServer) -> None:
    """Signed submissions whose state is not what Slack sends, or whose fields were drawn for another
    environment than the one selected, get an error on the form (never a 500), and nothing starts."""
    world.worker().run_once()
    client = bot.client(world)
    client.command(ALICE, "decide", channel_id=CHANNEL)
    matrix = _view(world, "decide_modal", ALICE)
    client.click_in_view(ALICE, matrix["id"], "decide_issue", "Performance")
    wait_until(lambda: "decide_start" in json.dumps(world.slack.views[matrix["id"]]), message="the start button")
    client.click_in_view(ALICE, matrix["id"], "decide_start", "Performance|High")
    form = _view(world, "decided_request", ALICE)
    view = {k: v for k, v in world.slack.views[form["id"]].items() if k != "user"}

    def submit(values: object, metadata: str | None = None) -> dict:
        forged = {**view, "state": {"values": values},
                  **({"private_metadata": metadata} if metadata is not None else {})}
        response = client._post_payload({"type": "view_submission", "user": {"id": ALICE}, "view": forged,
                                         "team": {"id": client.team_id}, "api_app_id": world.slack.app_id})
        assert response.status_code == 200, response.text
        return response.json()

    for values in ({"env": "prod"}, {"env": {"decided_env": "prod"}}, {"reason": "x", "args-code": ["x"]},
                   {"env": {"decided_env": {"selected_option": "prod"}}}, ["not", "a", "dict"]):
        answer = submit(values)
        assert answer["response_action"] == "errors" and "env" in answer["errors"], (values, answer)
    stale = submit({"env": {"decided_env": {"type": "static_select", "selected_option": {"value": "elsewhere"}}}})
    assert stale["response_action"] == "errors" and "still those for prod" in stale["errors"]["env"]
    unknown_row = submit({"env": {"decided_env": {"type": "static_select", "selected_option": {"value": "prod"}}}},
                         metadata='{"issue": "Meteor strike"}')
    assert unknown_row["response_action"] == "errors"
    assert world.slack.messages(CHANNEL) == [] and world.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback") == []
