"""Shared message plumbing of the Slack emulator: validation, storage, response URLs.

:class:`MessageWriter` turns validated message payloads into stored channel
messages and ephemerals.  It also implements what Slack does with posts to a
``response_url`` and with a slash command's synchronous acknowledgement.
:class:`sandbox.slack_api.SlackWebApi` builds the Web API methods on top of it.
"""

from __future__ import annotations

import copy
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sandbox.slack_state import RESPONSE_URL_MAX_USES, Record, ResponseUrlGrant, SlackState
from sandbox.slack_validation import MAX_MESSAGE_BLOCKS, validate_blocks, validate_text, validate_view

log = logging.getLogger("rollbot.sandbox.slack")
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_]{1,255}")


@dataclass(frozen=True)
class ApiResponse:
    """What the HTTP layer should send back: a JSON object or a plain text body."""

    status: int
    body: Record | str
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    """Close the connection without answering (the call may have been applied)."""
    delay: float = 0.0
    """Seconds to wait before answering."""


class ApiMethodError(Exception):
    """Raised by a method handler to answer ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class MessageWriter:
    """Validates and stores messages; answers response URL posts and command acks."""

    def __init__(self, state: SlackState) -> None:
        self.state = state

    def _channel(self, args: Record, *, posting: bool = True) -> str:
        """The ``channel`` argument; posting to an archived channel fails."""
        channel = args.get("channel")
        if not isinstance(channel, str) or not channel:
            raise ApiMethodError("channel_not_found")
        if posting and self.state.is_archived(channel):
            raise ApiMethodError("is_archived")
        return channel

    def _content(self, method: str, payload: Record) -> tuple[str, list[Record]]:
        """Validate ``text``/``blocks`` of a message payload and return them."""
        text, blocks = payload.get("text"), payload.get("blocks")
        if not text and not blocks and not payload.get("attachments"):
            raise ApiMethodError("no_text")
        text_errors = validate_text(text)
        if text_errors:
            self._reject(method, text_errors, {"text": text})
            raise ApiMethodError("msg_too_long", errors=text_errors)
        if blocks is not None:
            self._check_blocks(method, blocks)
        return (text if isinstance(text, str) else ""), _with_block_ids(blocks)

    def _check_blocks(self, method: str, blocks: object) -> None:
        errors = validate_blocks(blocks, limit=MAX_MESSAGE_BLOCKS)
        if errors:
            self._reject(method, errors, {"blocks": blocks})
            raise ApiMethodError("invalid_blocks", errors=errors, response_metadata=_messages(errors))

    def _check_view(self, method: str, view: object) -> Record:
        if not isinstance(view, dict):
            raise ApiMethodError("invalid_arguments", errors=["view is required"])
        errors = validate_view(view)
        if errors:
            self._reject(method, errors, {"view": view})
            raise ApiMethodError("invalid_blocks", errors=errors, response_metadata=_messages(errors))
        stored = copy.deepcopy(view)
        stored["blocks"] = _with_block_ids(stored.get("blocks"))
        return stored

    def _reject(self, method: str, errors: list[str], payload: Record) -> None:
        log.info("%s refused: %s", method, "; ".join(errors))
        self.state.validation_errors.append(
            {"method": method, "errors": list(errors), "payload": copy.deepcopy(payload)}
        )

    def _new_message(self, channel: str, text: str, blocks: list[Record], payload: Record) -> Record:
        """Build and store a bot message in ``channel``."""
        message: Record = {
            "type": "message",
            "ts": self.state.next_ts(),
            "channel": channel,
            "user": self.state.bot_user_id,
            "bot_id": self.state.bot_id,
            "team": self.state.team_id,
            "text": text,
            "blocks": blocks,
        }
        if payload.get("attachments"):
            message["attachments"] = copy.deepcopy(payload["attachments"])
        if payload.get("metadata"):
            message["metadata"] = _checked_metadata(payload["metadata"])
        thread_ts = payload.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
            if flag(payload.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        self.state.append_message(message)
        return message

    def _ephemeral(
        self, channel: str | None, user: str | None, text: str, blocks: list[Record], thread_ts: object, source: str
    ) -> Record:
        ephemeral: Record = {
            "type": "message",
            "subtype": "ephemeral",
            "ts": self.state.next_ts(),
            "channel": channel,
            "user": user,
            "bot_id": self.state.bot_id,
            "text": text,
            "blocks": blocks,
            "source": source,
        }
        if thread_ts:
            ephemeral["thread_ts"] = str(thread_ts)
        self.state.append_ephemeral(ephemeral)
        return ephemeral

    def post_response(self, token: str, payload: object) -> ApiResponse:
        """Handle a POST to a response URL (Slack answers in plain text)."""
        with self.state.lock:
            grant = self.state.response_url(token)
            result = self._response(grant, payload)
            args = payload if isinstance(payload, dict) else {"payload": payload}
            error = None if result.status == 200 else str(result.body)
            self.state.record_call("response_url", {"token": token, **args}, result.status, error)
        return result

    def deliver_ack(self, channel: str, user: str, payload: object) -> ApiResponse:
        """Show a slash command's acknowledgement body the way Slack does.

        Slack displays a non-empty ``ack()`` body of a slash command as a
        message: ephemeral to ``user`` by default, in ``channel`` with
        ``response_type: in_channel``.  Recorded as a ``command_ack`` call.
        """
        with self.state.lock:
            grant = ResponseUrlGrant(token="", channel=channel, user=user, message_ts=None)
            error: str | None = None
            try:
                if not isinstance(payload, dict):
                    raise ApiMethodError("invalid_payload")
                self._apply_response(grant, payload, source="command_ack")
            except ApiMethodError as failure:
                error = failure.error
            args = payload if isinstance(payload, dict) else {"payload": payload}
            self.state.record_call("command_ack", args, 400 if error else 200, error)
        return ApiResponse(400, error) if error else ApiResponse(200, "ok")

    def _response(self, grant: ResponseUrlGrant | None, payload: object) -> ApiResponse:
        if grant is None:
            return ApiResponse(404, "invalid_url")
        if grant.uses >= RESPONSE_URL_MAX_USES:
            return ApiResponse(404, "used_url")
        if not isinstance(payload, dict):
            return ApiResponse(400, "invalid_payload")
        try:
            self._apply_response(grant, payload)
        except ApiMethodError as failure:
            status = 404 if failure.error.endswith("not_found") else 400
            return ApiResponse(status, failure.error)
        grant.uses += 1
        self.state.response_posts.setdefault(grant.token, []).append(copy.deepcopy(payload))
        return ApiResponse(200, "ok")

    def _apply_response(self, grant: ResponseUrlGrant, payload: Record, source: str = "response_url") -> None:
        """Apply response_url semantics: delete/replace original, in_channel, or ephemeral."""
        original_ts = grant.message_ts or grant.last_posted_ts
        if flag(payload.get("delete_original")):
            target, in_channel = self._original(grant, original_ts)
            if in_channel:
                self.state.remove_message(target)
            else:
                self.state.remove_ephemeral(target)
            return
        text, blocks = self._content(source, payload)
        if flag(payload.get("replace_original")):
            target, in_channel = self._original(grant, original_ts)
            target["text"], target["blocks"] = text, blocks
            if in_channel:
                target["edited"] = {"user": self.state.bot_user_id, "ts": self.state.next_ts()}
            return
        if payload.get("response_type") == "in_channel":
            if not grant.channel:
                raise ApiMethodError("channel_not_found")
            if self.state.is_archived(grant.channel):
                raise ApiMethodError("is_archived")
            posted = self._new_message(grant.channel, text, blocks, payload)
        else:
            posted = self._ephemeral(grant.channel, grant.user, text, blocks, payload.get("thread_ts"), source)
        grant.last_posted_ts = posted["ts"]

    def _original(self, grant: ResponseUrlGrant, ts: str | None) -> tuple[Record, bool]:
        """The message a response URL's replace/delete applies to, and whether it is a channel message."""
        if ts and grant.channel:
            message = self.state.find_message(grant.channel, ts)
            if message is not None:
                return message, True
        ephemeral = self.state.find_ephemeral(ts) if ts else None
        if ephemeral is None:
            raise ApiMethodError("message_not_found")
        return ephemeral, False


def _checked_metadata(metadata: object) -> Record:
    """Message metadata as Slack takes it: ``event_type`` (letters, digits, underscores) and an
    ``event_payload`` object; anything else is ``invalid_metadata_format``."""
    if not isinstance(metadata, dict) or set(metadata) - {"event_type", "event_payload"}:
        raise ApiMethodError("invalid_metadata_format")
    event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type) or not isinstance(payload, dict):
        raise ApiMethodError("invalid_metadata_format")
    return copy.deepcopy(metadata)


def flag(value: object) -> bool:
    """Interpret a boolean argument that may arrive as a form string."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _with_block_ids(blocks: object) -> list[Record]:
    """Copy ``blocks``, giving each block without a ``block_id`` a random one, as Slack does."""
    if not isinstance(blocks, list):
        return []
    stored = copy.deepcopy(blocks)
    for block in stored:
        if isinstance(block, dict) and not block.get("block_id"):
            block["block_id"] = secrets.token_urlsafe(4)
    return stored


def _messages(errors: list[str]) -> Record:
    """``response_metadata`` as Slack sends it with ``invalid_blocks``: each error marked ``[ERROR]``."""
    return {"messages": [f"[ERROR] {error}" for error in errors]}
