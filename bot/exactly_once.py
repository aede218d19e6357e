"""Exactly-once Slack posts: each message about an incident has an identity (incident + key),
carried in its Slack ``metadata`` and kept in the store's message ledger.

* A key already posted is never posted again: its ts is returned.
* A post whose outcome is unknown (a timeout, a dropped connection, a 5xx, or a process that died
  mid-post and left the ledger saying "posting") is settled by reading Slack back
  (``conversations.history`` for channel messages, ``conversations.replies`` for thread
  replies) and adopting the message found; only when Slack says it is not there is it posted.
* A post Slack refused outright (4xx, or 429 after the client's retries) certainly did not
  happen: the ledger forgets the attempt and the caller decides whether to try again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.clock import Clock
from handlers.model import Incident
from handlers.ports import DeliveryFailed, Messages

log = logging.getLogger("rollbot.slack")

EVENT_TYPE = "rollbot_incident_message"
POST_ATTEMPTS = 3  # posts of one message when each one's outcome was unknown and Slack then lacked it
READ_BACK_TRIES = (0.0, 1.0)  # waits before each read-back after an uncertain post
READ_PAGES = 10  # pages of 200 messages searched per read-back
HISTORY_SLACK = timedelta(minutes=1)
RATE_LIMITED_WAIT = 2.0  # after the client waited out three 429s  # channel history is searched from a little before the incident


def identity(incident: Incident, key: str) -> dict[str, Any]:
    """The ``metadata`` of a message: which incident it is about and which message it is."""
    return {"event_type": EVENT_TYPE, "event_payload": {"incident": incident.id, "ref": incident.ref, "key": key}}


class ReadBackFailed(Exception):
    """Slack could not be read: whether the message exists is still unknown."""


class OncePoster:
    def __init__(self, client: WebClient, messages: Messages, clock: Clock, pace: Callable[[str], None],
                 read_back_tries: tuple[float, ...] = READ_BACK_TRIES) -> None:
        self._client = client
        self._messages = messages
        self._clock = clock
        self._pace = pace
        self._tries = read_back_tries
        self._bot_user: str | None = None

    def post(self, incident: Incident, key: str, channel: str, text: str, blocks: list[dict[str, Any]], *,
             thread_ts: str | None = None, broadcast: bool = False) -> str:
        """Post message ``key`` of ``incident`` once; returns its ts (posted now, before, or
        adopted). Raises DeliveryFailed: ``definite`` when certainly not posted."""
        record = self._messages.begin_message(incident.id, key, self._clock.now())
        if record.state == "posted" and record.ts:
            return record.ts
        if record.state == "doubt":
            found = self._settle(incident, key, channel, thread_ts)
            if found:
                return found
        extra: dict[str, Any] = {"thread_ts": thread_ts, "reply_broadcast": broadcast} if thread_ts else {}
        for attempt in range(POST_ATTEMPTS):
            try:
                self._pace(channel)
                response = self._client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                                         metadata=identity(incident, key), unfurl_links=False,
                                                         unfurl_media=False, **extra)
            except Exception as error:
                failure = delivery_failed(error)
                if failure.definite and not (_rate_limited(error) and attempt < POST_ATTEMPTS - 1):
                    self._messages.message_not_posted(incident.id, key)
                    raise failure from None
                if failure.definite:  # still rate limited after the client's own waits: wait once more
                    time.sleep(RATE_LIMITED_WAIT)
                    continue
                log.warning("%s: Slack did not confirm message %s (%s); reading it back", incident.ref, key, failure,
                            extra={"incident": incident.id})
                found = self._settle(incident, key, channel, thread_ts)
                if found:
                    return found
                continue  # Slack does not have it: posting again cannot double it
            ts = str(response["ts"])
            self._messages.message_posted(incident.id, key, ts)
            return ts
        raise DeliveryFailed(f"Slack did not confirm message {key} after {POST_ATTEMPTS} tries", definite=False)

    def find(self, incident: Incident, key: str, channel: str, thread_ts: str | None = None) -> str | None:
        """Where message ``key`` is, without posting: the ledger first, then (if an attempt was
        made) Slack. None when it was never posted; raises DeliveryFailed if Slack cannot say."""
        record = self._messages.begin_message(incident.id, key, self._clock.now())
        if record.state == "posted" and record.ts:
            return record.ts
        if record.state == "new":
            self._messages.message_not_posted(incident.id, key)
            return None
        return self._settle(incident, key, channel, thread_ts)

    # -- reading back --------------------------------------------------------------------------

    def _settle(self, incident: Incident, key: str, channel: str, thread_ts: str | None) -> str | None:
        """Read Slack back: the ts of the message if it is there (recorded as posted), None if
        Slack certainly lacks it; DeliveryFailed (uncertain) when Slack cannot be read."""
        failure: ReadBackFailed | None = None
        for wait in self._tries:
            time.sleep(wait)
            try:
                found = self._read_back(incident, key, channel, thread_ts)
            except ReadBackFailed as error:
                failure = error
                continue
            failure = None
            if found:
                log.info("%s: message %s was posted after all; adopted", incident.ref, key,
                         extra={"incident": incident.id})
                self._messages.message_posted(incident.id, key, found)
                return found
        if failure is not None:
            raise DeliveryFailed(f"Slack could not be read back ({failure}); message {key} may exist", definite=False)
        return None

    def _read_back(self, incident: Incident, key: str, channel: str, thread_ts: str | None) -> str | None:
        me = self._me()
        cursor = None
        for _ in range(READ_PAGES):
            try:
                if thread_ts:
                    page = self._client.conversations_replies(channel=channel, ts=thread_ts, limit=200, cursor=cursor,
                                                              include_all_metadata=True)
                else:
                    oldest = (incident.created_at - HISTORY_SLACK).timestamp()
                    page = self._client.conversations_history(channel=channel, oldest=f"{oldest:.6f}", limit=200,
                                                              cursor=cursor, include_all_metadata=True)
            except Exception as error:
                raise ReadBackFailed(str(delivery_failed(error))) from None
            for message in page.get("messages") or []:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if (message.get("user") == me and (message.get("metadata") or {}).get("event_type") == EVENT_TYPE
                        and payload.get("incident") == incident.id and payload.get("key") == key):
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return None
        raise ReadBackFailed(f"more than {READ_PAGES * 200} messages to search")

    def _me(self) -> str:
        """The bot's own user id: only its messages are adopted."""
        if self._bot_user is None:
            try:
                self._bot_user = str(self._client.auth_test()["user_id"])
            except Exception as error:
                raise ReadBackFailed(str(delivery_failed(error))) from None
        return self._bot_user


def _rate_limited(error: Exception) -> bool:
    return isinstance(error, SlackApiError) and getattr(error.response, "status_code", 200) == 429


def retryable(error: Exception) -> bool:
    """Worth sending again if the call is idempotent: rate limited, or the outcome is unknown."""
    return _rate_limited(error) or not delivery_failed(error).definite


def delivery_failed(error: Exception) -> DeliveryFailed:
    """Classify a Slack call's failure: did the message certainly not get posted?"""
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 200)
        data = getattr(error.response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        return DeliveryFailed(f"Slack answered {code or f'HTTP {status}'}", definite=status < 500)
    reason = getattr(error, "reason", None)
    if isinstance(error, ConnectionRefusedError) or isinstance(reason, ConnectionRefusedError):
        return DeliveryFailed("Slack refused the connection", definite=True)
    return DeliveryFailed(f"Slack call failed ({type(error).__name__}); it may or may not have been posted",
                          definite=False)
