"""The baseline: a bare Bolt app, as a team would start one from Slack's starter template.

It answers the same three requests as Rollbot does in the benchmark (`/rollback help`, a
`/rollback code …` request, an Approve click) with an ack and nothing else, and is served the
way Rollbot is: gunicorn, gthread, 2 workers x 16 threads (`python -m bench` starts it with
`gunicorn bench.bare_bolt:app`). Bolt's defaults stay as they are (`process_before_response`
off, so each ack waits on Bolt's 10 ms polling), since that is what "a bare Bolt app" means.
"""

from __future__ import annotations

import os
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

# Its Web API client points where Rollbot's does (the Slack emulator), for Bolt's one auth.test.
bolt = App(signing_secret=os.environ["SLACK_SIGNING_SECRET"], token_verification_enabled=False,
           client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]))


@bolt.command("/rollback")
def rollback(ack: Ack, body: dict[str, Any]) -> None:
    ack(response_type="ephemeral", text=f"Planning {body.get('text', '')[:40]}…")


@bolt.action("approve")
def approve(ack: Ack) -> None:
    ack()


_slack = SlackRequestHandler(bolt, path="/slack/events")


def app(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "15")])
        return [b'{"status":"ok"}']
    return _slack(environ, start_response)
