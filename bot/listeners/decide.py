"""The decision matrix: `/rollback decide`'s modal, the button that opens the recommended rollback
filled in, and that form's submission, which starts the rollback with the row it came from."""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.decide import ARGS_BLOCK, FILLED, decide_modal, request_form
from handlers import decide
from handlers.commands import clean
from handlers.request_jobs import ReplyTo, queue_request
from handlers.services import Services

log = logging.getLogger("rollbot.decide")


def _action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions")
    return actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    return str(user.get("id") or "") if isinstance(user, dict) else ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _row_of(text: object) -> tuple[str | None, str | None]:
    """``issue|severity`` as the bot wrote it on the Start button."""
    issue, _, severity = (text if isinstance(text, str) else "").partition("|")
    return issue or None, severity or None


def _state(view: dict[str, Any]) -> dict[str, Any]:
    return _dict(_dict(view.get("state")).get("values"))


def _text(block: object) -> str:
    """What was typed in an input block (a plain-text input's ``value``); "" for anything else."""
    typed = _dict(_dict(block).get("value")).get("value")
    return clean(typed) if isinstance(typed, str) else ""


def _selected_env(view: dict[str, Any]) -> str | None:
    chosen = _dict(_dict(_dict(_state(view).get("env")).get("decided_env")).get("selected_option")).get("value")
    return chosen if isinstance(chosen, str) else None


def _arguments(view: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """kind -> (its block id, what was typed in it)."""
    found = {}
    for block_id, block in _state(view).items():
        if isinstance(block_id, str) and block_id.startswith(ARGS_BLOCK):
            found[block_id[len(ARGS_BLOCK):].removesuffix(FILLED)] = (block_id, _text(block))
    return found


def _metadata(view: dict[str, Any]) -> dict[str, str | None]:
    """The row, severity, channel and drawn-for environment the bot wrote (each None if absent)."""
    try:
        data = json.loads(view.get("private_metadata") or "")
    except (TypeError, ValueError):
        data = None
    data = _dict(data)
    return {key: data[key] if isinstance(data.get(key), str) else None
            for key in ("issue", "severity", "channel", "env")}


def _field_error(message: str) -> str:
    """A refusal as a form field's error: plain text (no mrkdwn), and said to be shortened if it is."""
    text = html.unescape(message).replace("`", "")
    return text if len(text) <= 300 else text[:299].rsplit(" ", 1)[0] + " …"


def register(app: App, svc: Services) -> None:
    envs = list(svc.policy.environments)
    default_env = next((name for name in envs if svc.policy.is_production(name)), envs[0])

    def available(issue: str | None) -> bool:
        try:
            decide.decision(svc, issue, None)
        except decide.InputError:
            return False
        return True

    def redraw_decide(client: WebClient, body: dict[str, Any], issue: str | None, severity: str | None) -> None:
        view = _dict(body.get("view"))
        client.views_update(view_id=view.get("id"), hash=view.get("hash"),
                            view=decide_modal(issue, severity, available=available(issue),
                                              channel=_metadata(view)["channel"]))

    @app.action("decide_issue")
    def on_issue(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        issue = _dict(_action(body).get("selected_option")).get("value")
        redraw_decide(client, body, issue if isinstance(issue, str) else None, None)  # from the row's severity

    @app.action("decide_severity")
    def on_severity(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        severity = _dict(_action(body).get("selected_option")).get("value")
        redraw_decide(client, body, _metadata(_dict(body.get("view")))["issue"],
                      severity if isinstance(severity, str) else None)

    @app.action("decide_start")
    def on_start(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """Open the form at once (the trigger lives 3 s), then fill in what Rollbot can tell."""
        ack()
        issue, severity = _row_of(_action(body).get("value"))
        try:
            decided = decide.decision(svc, issue, severity)
        except decide.InputError as error:
            log.info("decide_start with a value Rollbot did not write: %s", error.message)
            return
        channel = _metadata(_dict(body.get("view")))["channel"]
        svc.audit(None, _user(body), "decide", "ok", issue=decided.row.issue, severity=decided.severity,
                  kind=decided.kind.name)
        pushed = client.views_push(trigger_id=body["trigger_id"],
                                   view=request_form(decided, envs, default_env, None, channel=channel))
        fill(_dict(pushed.get("view")), decided, default_env, client, channel=channel)

    def fill(view: dict[str, Any], decided: decide.Decision, env: str, client: WebClient, reason: str = "",
             channel: str | None = None) -> None:
        found = decide.suggestions(svc, decided, env)
        try:
            client.views_update(view_id=view.get("id"), hash=view.get("hash"),
                                view=request_form(decided, envs, env, found, reason, channel))
        except SlackApiError as error:  # the person moved on (closed it, or it changed meanwhile)
            log.info("decide form not filled in: %s", error.response.get("error"))

    @app.action("decided_env")
    def on_env(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = _dict(body.get("view"))
        meta = _metadata(view)
        env = _dict(_action(body).get("selected_option")).get("value")
        try:
            decided = decide.decision(svc, meta["issue"], meta["severity"])
        except decide.InputError:
            return
        if isinstance(env, str) and env in svc.policy.environments:
            fill(view, decided, env, client, _text(_state(view).get("reason")), meta["channel"])

    @app.view("decided_request")
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user, meta = _user(body), _metadata(view)
        env = _selected_env(view)
        typed = _arguments(view)
        if env is not None and meta["env"] is not None and env != meta["env"]:
            ack(response_action="errors", errors={"env": f"The fields below are still those for {meta['env']}; "
                                                         "they update in a moment, then submit again."})
            return
        try:
            decided = decide.decision(svc, meta["issue"], meta["severity"])
            rollback = decide.rollback(svc, decided, env, {k: text for k, (_, text) in typed.items()},
                                       _text(_state(view).get("reason")))
        except decide.InputError as error:
            field = typed[error.field][0] if error.field in typed else "env"  # else: the environment's block
            ack(response_action="errors", errors={field: _field_error(error.message)})
            return
        where = meta["channel"] or svc.policy.environments[rollback.env].channel  # where they asked
        try:  # durable before the ack: the worker plans it (handlers.request_jobs)
            queue_request(svc, user, rollback, ReplyTo(channel=where, label=decided.row.label))
        except Exception as error:
            log.warning("could not queue a request: %s", type(error).__name__)
            ack(response_action="errors", errors={"env": "Rollbot could not record the request (its database did "
                                                         "not answer); nothing was started. Submit again."})
            return
        ack(response_action="clear")  # the form and the matrix close; the root message follows
