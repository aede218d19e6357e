"""The decision matrix: `/rollback decide`'s modal, the button that opens the recommended rollback
filled in, and that form's submission, which starts the rollback with the row it came from."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.decide import ARGS_BLOCK, decide_modal, request_form
from handlers import decide
from handlers.commands import clean
from handlers.requests import request_rollback
from handlers.services import Refused, Services

log = logging.getLogger("rollbot.decide")


def _action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions")
    return actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    return str(user.get("id") or "") if isinstance(user, dict) else ""


def _row_of(text: object) -> tuple[str | None, str | None]:
    """``issue|severity`` as the bot wrote it (a button's value, the decide modal's metadata)."""
    issue, _, severity = (text if isinstance(text, str) else "").partition("|")
    return issue or None, severity or None


def _state(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    values = (view.get("state") or {}).get("values")
    return values if isinstance(values, dict) else {}


def _text(block: dict[str, Any] | None) -> str:
    value = (block or {}).get("value")
    return clean(str((value or {}).get("value") or "")) if isinstance(value, dict) else ""


def _selected_env(view: dict[str, Any]) -> str | None:
    chosen = ((_state(view).get("env") or {}).get("decided_env") or {}).get("selected_option")
    return chosen.get("value") if isinstance(chosen, dict) else None


def _arguments(view: dict[str, Any], env: str) -> dict[str, tuple[str, str]]:
    """kind -> (its block id, what was typed), for the arguments blocks of environment ``env``."""
    found = {}
    for block_id, block in _state(view).items():
        if block_id.startswith(ARGS_BLOCK):
            kind, _, rest = block_id[len(ARGS_BLOCK):].partition("-")
            if rest.removesuffix("-s") == env:
                found[kind] = (block_id, _text(block))
    return found


def _metadata(view: dict[str, Any]) -> tuple[str | None, str | None]:
    try:
        data = json.loads(view.get("private_metadata") or "")
    except (TypeError, ValueError):
        return None, None
    return (data.get("issue"), data.get("severity")) if isinstance(data, dict) else (None, None)


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
        view = body.get("view") or {}
        client.views_update(view_id=view.get("id"), hash=view.get("hash"),
                                view=decide_modal(issue, severity, available=available(issue)))

    @app.action("decide_issue")
    def on_issue(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        issue = (_action(body).get("selected_option") or {}).get("value")
        redraw_decide(client, body, issue, None)  # a new issue type starts from its row's severity

    @app.action("decide_severity")
    def on_severity(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        issue, _ = _row_of((body.get("view") or {}).get("private_metadata"))
        redraw_decide(client, body, issue, (_action(body).get("selected_option") or {}).get("value"))

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
        svc.audit(None, _user(body), "decide", "ok", issue=decided.row.issue, severity=decided.severity,
                  kind=decided.kind.name)
        pushed = client.views_push(trigger_id=body["trigger_id"], view=request_form(decided, envs, default_env, None))
        fill(pushed.get("view") or {}, decided, default_env, client)

    def fill(view: dict[str, Any], decided: decide.Decision, env: str, client: WebClient, reason: str = "") -> None:
        found = decide.suggestions(svc, decided, env)
        try:
            client.views_update(view_id=view.get("id"), hash=view.get("hash"),
                                view=request_form(decided, envs, env, found, reason))
        except SlackApiError as error:  # the person moved on (closed it, or it changed meanwhile)
            log.info("decide form not filled in: %s", error.response.get("error"))

    @app.action("decided_env")
    def on_env(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = body.get("view") or {}
        issue, severity = _metadata(view)
        env = (_action(body).get("selected_option") or {}).get("value")
        try:
            decided = decide.decision(svc, issue, severity)
        except decide.InputError:
            return
        if env in svc.policy.environments:
            fill(view, decided, env, client, _text(_state(view).get("reason")))

    @app.view("decided_request")
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = _user(body)
        issue, severity = _metadata(view)
        env = _selected_env(view)
        typed = _arguments(view, env or "")
        try:
            decided = decide.decision(svc, issue, severity)
            rollback = decide.rollback(svc, decided, env, {k: text for k, (_, text) in typed.items()},
                                       _text(_state(view).get("reason")))
        except decide.InputError as error:
            field = typed[error.field][0] if error.field in typed else "env"  # else: the environment's block
            ack(response_action="errors", errors={field: error.message[:150]})
            return
        ack(response_action="clear")  # the form and the matrix close; the root message follows
        channel = svc.policy.environments[rollback.env].channel
        try:
            incident = request_rollback(svc, user, rollback)
        except Refused as refused:
            svc.notifier.tell(channel, user, f":no_entry: Not started: {refused.message}")
            return
        svc.notifier.tell(channel, user, f":rewind: {incident.ref} ({decided.row.label}, severity "
                          f"{decided.severity}) is waiting for approval in <#{incident.channel}>.")
