"""Sends Slack-shaped, v0-signed requests to the bot, as Slack itself would.

:class:`SignedSlackClient` plays the Slack side of the conversation: it
POSTs slash commands, button clicks and modal submissions to the bot's
``/slack/events`` endpoint over real HTTP, signed with the app's signing
secret.  Response URLs and trigger ids in those payloads are issued by the
:class:`~sandbox.slack_emulator.SlackEmulator`, so whatever the bot does with
them lands in the emulator's state.

Tests should click buttons the bot really rendered::

    message = slack.messages("C0SANDBOX")[-1]
    client.click("U123", channel="C0SANDBOX", message_ts=message["ts"], action_id="approve")
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import httpx

from sandbox.block_kit import MULTI_SELECTS, SINGLE_SELECTS, check_lengths, find_action, option
from sandbox.slack_emulator import SlackEmulator

Record = dict[str, Any]

VERIFICATION_TOKEN = "sandbox-verification-token"
"""The (deprecated) verification token Slack still puts into payloads."""



class SignedSlackClient:
    """Posts signed Slack requests (commands, interactions) to the bot.

    Args:
        events_url: The bot's Slack endpoint, e.g. ``http://127.0.0.1:8000/slack/events``.
        signing_secret: The app's signing secret the bot verifies against.
        emulator: The Slack emulator issuing response URLs and trigger ids.
        team_id: Workspace id put into payloads.
        timeout: HTTP timeout in seconds.
    """

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        emulator: SlackEmulator,
        team_id: str = "T0SANDBOX",
        timeout: float = 10.0,
    ) -> None:
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.emulator = emulator
        self.team_id = team_id
        self._http = httpx.Client(trust_env=False, timeout=timeout)
        self.sent_payloads: list[str] = []  # interactivity payloads, in the order sent

    def close(self) -> None:
        """Close the underlying HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------
    # Signing and raw requests

    def sign(self, body: bytes, timestamp: int, secret: str | None = None) -> str:
        """The ``X-Slack-Signature`` value for ``body`` sent at ``timestamp``."""
        key = (secret if secret is not None else self.signing_secret).encode("utf-8")
        base = b"v0:" + str(timestamp).encode("ascii") + b":" + body
        return "v0=" + hmac.new(key, base, hashlib.sha256).hexdigest()

    def post_raw(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        signature: str | None = None,
        retry_num: int | None = None,
    ) -> httpx.Response:
        """POST ``body`` to the bot with Slack's headers.

        Args:
            body: Raw request body.
            content_type: ``Content-Type`` header value.
            timestamp: ``X-Slack-Request-Timestamp`` (now by default; pass an old
                value to simulate a replayed/stale request).
            secret: Sign with this secret instead of the real one (forgery).
            signature: Send this signature verbatim instead of computing one.
            retry_num: Mark the delivery as Slack's retry number N (``X-Slack-Retry-Num``).
        """
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature if signature is not None else self.sign(body, ts, secret),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return self._http.post(self.events_url, content=body, headers=headers)

    def _post_form(self, fields: Mapping[str, str]) -> httpx.Response:
        return self.post_raw(urlencode(fields).encode("utf-8"), "application/x-www-form-urlencoded")

    def _post_payload(self, payload: Record) -> httpx.Response:
        body = json.dumps(payload)
        self.sent_payloads.append(body)  # so a test can re-deliver exactly what was sent
        return self._post_form({"payload": body})

    # ------------------------------------------------------------------
    # Slack-shaped requests

    def command(
        self,
        user_id: str,
        text: str,
        *,
        channel_id: str = "C0SANDBOX",
        command: str = "/rollback",
        user_name: str | None = None,
    ) -> httpx.Response:
        """Send a slash command invocation.

        A non-empty 200 body (the bot's ``ack(...)`` content) is shown the way
        Slack shows it: recorded in the emulator as an ephemeral for the user
        (or a channel message with ``response_type: in_channel``).
        """
        body = self.command_body(user_id, text, channel_id=channel_id, command=command, user_name=user_name)
        response = self.post_raw(body, "application/x-www-form-urlencoded")
        ack = _ack_body(response)
        if ack is not None:
            self.emulator.api.deliver_ack(channel_id, user_id, ack)
        return response

    def command_body(self, user_id: str, text: str, *, channel_id: str = "C0SANDBOX", command: str = "/rollback",
                     user_name: str | None = None) -> bytes:
        """The form body of a slash command invocation, unsigned (for a load generator that
        signs at send time; :meth:`command` sends one)."""
        fields = self.command_fields(user_id, text, channel_id=channel_id, command=command, user_name=user_name)
        return urlencode(fields).encode("utf-8")

    def command_fields(self, user_id: str, text: str, *, channel_id: str = "C0SANDBOX", command: str = "/rollback",
                       user_name: str | None = None) -> dict[str, str]:
        """A slash command invocation's fields (a form over HTTP, an envelope's payload in Socket Mode)."""
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": self.emulator.team_domain,
            "channel_id": channel_id,
            "channel_name": _channel_name(channel_id),
            "user_id": user_id,
            "user_name": user_name or self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.emulator.app_id,
            "is_enterprise_install": "false",
            "response_url": self.emulator.new_response_url(channel=channel_id, user=user_id),
            "trigger_id": self.emulator.new_trigger_id(user_id),
        }

    def click(
        self,
        user_id: str,
        *,
        channel: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
        block_id: str | None = None,
        action_type: str = "button",
        selected_options: list[Record] | None = None,
        message: Record | None = None,
    ) -> httpx.Response:
        """Click an interactive element of a message the bot posted (``message``: the copy the
        user saw, when it may have been redrawn meanwhile).

        The element must exist in the stored message (channel message or
        ephemeral); ``block_id`` and ``value`` default to the rendered ones.
        """
        return self._post_payload(self.click_payload(
            user_id, channel=channel, message_ts=message_ts, action_id=action_id, value=value, block_id=block_id,
            action_type=action_type, selected_options=selected_options, message=message))

    def click_payload(self, user_id: str, *, channel: str, message_ts: str, action_id: str, value: str | None = None,
                      block_id: str | None = None, action_type: str = "button",
                      selected_options: list[Record] | None = None, message: Record | None = None) -> Record:
        """The ``block_actions`` payload of that click, unsent (:meth:`click` sends one)."""
        if message is not None:
            ephemeral = False
        else:
            message, ephemeral = self._find_message(channel, message_ts)
        element = find_action(message, action_id)
        if element.get("type") != action_type:
            raise AssertionError(f"element {action_id!r} is a {element.get('type')!r}, not a {action_type!r}")
        action: Record = {
            "action_id": action_id,
            "block_id": block_id if block_id is not None else element["block_id"],
            "type": action_type,
            "action_ts": f"{time.time():.6f}",
        }
        chosen = value if value is not None else element.get("value")
        if action_type in MULTI_SELECTS or selected_options is not None:
            action["selected_options"] = copy.deepcopy(selected_options or [])
        elif action_type in SINGLE_SELECTS:
            action["selected_option"] = option(element, chosen)
        else:
            if "text" in element:
                action["text"] = copy.deepcopy(element["text"])
            if chosen is not None:
                action["value"] = chosen
        payload: Record = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": self.emulator.app_id,
            "token": VERIFICATION_TOKEN,
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": self.emulator.new_trigger_id(user_id),
            "team": {"id": self.team_id, "domain": self.emulator.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": _channel_name(channel)},
            "state": {"values": {}},
            "response_url": self.emulator.new_response_url(channel=channel, user=user_id, message_ts=message_ts),
            "actions": [action],
        }
        if not ephemeral:
            payload["message"] = message
        return payload

    def click_in_view(self, user_id: str, view_id: str, action_id: str, value: str) -> httpx.Response:
        """Pick ``value`` in a select (or click a button) of an open modal: a ``block_actions``
        payload with a ``view`` container, as Slack sends it."""
        views = self.emulator.views
        if view_id not in views:
            raise AssertionError(f"no view {view_id!r} in the emulator; known views: {sorted(views)}")
        view = views[view_id]
        view.pop("user", None)
        element = find_action(view, action_id)
        action: Record = {"action_id": action_id, "block_id": element["block_id"], "type": element.get("type"),
                          "action_ts": f"{time.time():.6f}"}
        if element.get("type") in SINGLE_SELECTS:
            action["selected_option"] = option(element, value)
        else:
            action["value"] = value
        payload: Record = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": self.emulator.app_id,
            "token": VERIFICATION_TOKEN,
            "container": {"type": "view", "view_id": view_id},
            "trigger_id": self.emulator.new_trigger_id(user_id),
            "team": {"id": self.team_id, "domain": self.emulator.team_domain},
            "view": view,
            "actions": [action],
        }
        return self._post_payload(payload)

    def event(self, event: dict[str, Any], *, event_id: str | None = None,
              retry_num: int | None = None) -> httpx.Response:
        """Deliver an Events API ``event_callback`` (JSON body, signed) such as
        ``{"type": "app_home_opened", "user": "U…", "tab": "home"}``. Pass the ``event_id`` of an
        earlier delivery and a ``retry_num`` to deliver it again as Slack's retries do."""
        body = json.dumps({
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": self.emulator.app_id,
            "type": "event_callback",
            "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
            "event": {"event_ts": f"{time.time():.6f}", **event},
        }).encode()
        return self.post_raw(body, "application/json", retry_num=retry_num)

    def submit_view(self, user_id: str, view_id: str, values: dict[str, Any]) -> httpx.Response:
        """Submit a modal the bot opened, with ``state.values`` = ``values``.

        ``values`` is shaped like Slack's:
        ``{block_id: {action_id: {"type": "plain_text_input", "value": "..."}}}``.
        """
        return self._post_payload(self.view_payload(user_id, view_id, values))

    def view_payload(self, user_id: str, view_id: str, values: dict[str, Any]) -> Record:
        """The ``view_submission`` payload of that submission, unsent (:meth:`submit_view` sends one)."""
        views = self.emulator.views
        if view_id not in views:
            raise AssertionError(f"no view {view_id!r} in the emulator; known views: {sorted(views)}")
        view = views[view_id]
        view.pop("user", None)
        known_blocks = {b.get("block_id") for b in view.get("blocks", []) if isinstance(b, dict)}
        unknown = sorted(set(values) - known_blocks)
        if unknown:
            known = sorted(map(str, known_blocks))
            raise AssertionError(f"view {view_id!r} has no blocks {unknown}; its block_ids: {known}")
        check_lengths(view, values)
        view["state"] = {"values": copy.deepcopy(values)}
        payload: Record = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.emulator.team_domain},
            "user": self._user(user_id),
            "api_app_id": self.emulator.app_id,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self.emulator.new_trigger_id(user_id),
            "view": view,
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }
        return payload

    @staticmethod
    def find_action(message: Mapping[str, Any], action_id: str) -> Record:
        """Alias of :func:`sandbox.block_kit.find_action`."""
        return find_action(message, action_id)

    # ------------------------------------------------------------------
    # Helpers

    def _find_message(self, channel: str, ts: str) -> tuple[Record, bool]:
        """The stored message clicked on, and whether it is ephemeral."""
        try:
            return self.emulator.message(channel, ts), False
        except KeyError:
            pass
        for ephemeral in self.emulator.ephemerals(channel=channel):
            if ephemeral["ts"] == ts:
                return ephemeral, True
        raise AssertionError(f"no message or ephemeral {ts!r} in channel {channel!r} to click on")

    def _user_name(self, user_id: str) -> str:
        with self.emulator.lock:
            user = self.emulator.lookup_user(user_id)
            return str(user["name"]) if user else user_id.lower()

    def _user(self, user_id: str) -> Record:
        name = self._user_name(user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}


def _channel_name(channel_id: str) -> str:
    """A stable, plausible channel name for payloads."""
    return "rollbot-sandbox" if channel_id == "C0SANDBOX" else channel_id.lower()


def _ack_body(response: httpx.Response) -> Record | None:
    """The message a slash command's synchronous response carries, if any."""
    if response.status_code != 200 or not response.content.strip():
        return None
    try:
        body = response.json()
    except ValueError:
        return {"text": response.text}
    return body if isinstance(body, dict) and (body.get("text") or body.get("blocks")) else None
