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
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.clock import Clock
from handlers.model import Incident
from handlers.ports import DeliveryFailed, MessageRecord, Messages

log = logging.getLogger("rollbot.slack")

EVENT_TYPE = "rollbot_incident_message"
POST_ATTEMPTS = 3  # posts of one message when each one's outcome was unknown and Slack then lacked it
READ_BACK_TRIES = (0.0, 1.0)  # waits before each read-back after an uncertain post
READ_PAGES = 10  # pages of 200 messages searched per read-back
HISTORY_SLACK = timedelta(minutes=1)
RATE_LIMITED_WAIT = 2.0  # after the client waited out three 429s
MAYBE_APPLIED = frozenset({"internal_error", "fatal_error", "request_timeout", "service_unavailable"})  # channel history is searched from a little before the incident


def identity(incident: Incident, key: str) -> dict[str, Any]:
    """The ``metadata`` of a message: which incident (and which install's incident: its creation
    time tells two deployments sharing a channel apart) and which message it is."""
    return {"event_type": EVENT_TYPE, "event_payload": {"incident": incident.id, "ref": incident.ref, "key": key,
                                                        "created": incident.created_at.isoformat()}}


class ReadBackFailed(Exception):
    """Slack could not be read: whether the message exists is still unknown."""


@dataclass(frozen=True)
class Posted:
    ts: str
    adopted: bool = False  # an earlier attempt had posted it: its content may be older than this one's


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
             thread_ts: str | None = None, broadcast: bool = False, read_back: bool = True) -> Posted:
        """Post message ``key`` of ``incident`` once; returns where it is (posted now, before, or
        adopted). Raises DeliveryFailed: ``definite`` only when it is certainly not in Slack.
        ``read_back=False`` (a DM, which the bot cannot read back): at most once, an attempt whose
        outcome is unknown is never followed by another."""
        record = self._messages.begin_message(incident.id, key, self._clock.now())
        if record.state == "posted" and record.ts:
            return Posted(record.ts, adopted=True)
        if record.state == "busy":
            raise DeliveryFailed(f"another process is posting message {key}", definite=False)
        if record.state == "doubt" and not read_back:
            self._messages.message_unsettled(incident.id, key)
            raise DeliveryFailed(f"message {key} may have been posted and cannot be read back", definite=False)
        try:
            return self._post(incident, key, channel, text, blocks, thread_ts, broadcast, record, read_back)
        except DeliveryFailed as failure:
            if failure.definite:
                self._messages.message_not_posted(incident.id, key)
            else:
                self._messages.message_unsettled(incident.id, key)
            raise
        except BaseException:
            self._messages.message_unsettled(incident.id, key)
            raise

    def _post(self, incident: Incident, key: str, channel: str, text: str, blocks: list[dict[str, Any]],
              thread_ts: str | None, broadcast: bool, record: MessageRecord, read_back: bool = True) -> Posted:
        since = record.since
        if record.state == "doubt":
            found = self._settle(incident, key, channel, thread_ts, since)
            if found:
                return Posted(found, adopted=True)
        extra: dict[str, Any] = {"thread_ts": thread_ts, "reply_broadcast": broadcast} if thread_ts else {}
        unknown = record.state == "doubt"  # an earlier attempt may have posted it, however this one ends
        for attempt in range(POST_ATTEMPTS):
            try:
                self._pace(channel)
                response = self._client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                                         metadata=identity(incident, key), unfurl_links=False,
                                                         unfurl_media=False, **extra)
            except Exception as error:
                failure = delivery_failed(error)
                if failure.definite and _rate_limited(error) and attempt < POST_ATTEMPTS - 1:
                    time.sleep(RATE_LIMITED_WAIT)  # still rate limited after the client's own waits
                    continue
                if failure.definite:
                    raise (failure if not unknown else DeliveryFailed(str(failure), definite=False)) from None
                if not read_back:
                    raise failure from None
                unknown = True
                log.warning("%s: Slack did not confirm message %s (%s); reading it back", incident.ref, key, failure,
                            extra={"incident": incident.id})
                found = self._settle(incident, key, channel, thread_ts, since)
                if found:
                    return Posted(found, adopted=True)
                continue  # Slack does not have it: posting again cannot double it
            ts = str(response["ts"])
            self._messages.message_posted(incident.id, key, ts)
            return Posted(ts)
        raise DeliveryFailed(f"Slack did not confirm message {key} after {POST_ATTEMPTS} tries", definite=False)

    def find(self, incident: Incident, key: str, channel: str, thread_ts: str | None = None) -> str | None:
        """Where message ``key`` is, without posting: the ledger first, then (if an attempt was
        made) Slack. None when it is certainly not in Slack; raises DeliveryFailed (uncertain)
        when that cannot be told now (Slack cannot be read, or another process is posting it)."""
        record = self._messages.begin_message(incident.id, key, self._clock.now())
        if record.state == "posted" and record.ts:
            return record.ts
        if record.state == "busy":
            raise DeliveryFailed(f"another process is posting message {key}", definite=False)
        if record.state == "new":
            self._messages.message_not_posted(incident.id, key)
            return None
        try:
            found = self._settle(incident, key, channel, thread_ts, record.since)
        except BaseException:
            self._messages.message_unsettled(incident.id, key)
            raise
        if found is None:
            self._messages.message_not_posted(incident.id, key)
        return found

    # -- reading back --------------------------------------------------------------------------

    def _settle(self, incident: Incident, key: str, channel: str, thread_ts: str | None,
                since: datetime | None) -> str | None:
        """Read Slack back: the ts of the message if it is there (recorded as posted), None if
        Slack certainly lacks it; DeliveryFailed (uncertain) when Slack cannot be read."""
        failure: ReadBackFailed | None = None
        for wait in self._tries:
            time.sleep(wait)
            try:
                found = self._read_back(incident, key, channel, thread_ts, since)
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

    def _read_back(self, incident: Incident, key: str, channel: str, thread_ts: str | None,
                   since: datetime | None) -> str | None:
        me = self._me()
        wanted = identity(incident, key)["event_payload"]
        cursor = None
        joined = False
        page_number = 0
        while page_number < READ_PAGES:
            try:
                if thread_ts:
                    page = self._client.conversations_replies(channel=channel, ts=thread_ts, limit=200, cursor=cursor,
                                                              include_all_metadata=True)
                else:
                    oldest = ((since or incident.created_at) - HISTORY_SLACK).timestamp()
                    page = self._client.conversations_history(channel=channel, oldest=f"{oldest:.6f}", limit=200,
                                                              cursor=cursor, include_all_metadata=True)
            except SlackApiError as error:
                if not joined and error.response.get("error") == "not_in_channel":
                    # chat:write.public posts without joining; reading needs membership (public channels)
                    joined = True
                    self._join(channel)
                    continue
                raise ReadBackFailed(str(delivery_failed(error))) from None
            except Exception as error:
                raise ReadBackFailed(str(delivery_failed(error))) from None
            page_number += 1
            for message in page.get("messages") or []:
                metadata = message.get("metadata") or {}
                if (message.get("user") == me and metadata.get("event_type") == EVENT_TYPE
                        and metadata.get("event_payload") == wanted):
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return None
        raise ReadBackFailed(f"more than {READ_PAGES * 200} messages to search")

    def _join(self, channel: str) -> None:
        try:
            self._client.conversations_join(channel=channel)
            log.info("joined %s to read it back (the bot could post there without being a member)", channel)
        except Exception as error:
            raise ReadBackFailed(f"not a member of {channel}, and joining failed: {delivery_failed(error)}") from None

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
        # Slack documents internal_error and fatal_error (HTTP 200) as "some aspect of the
        # operation may have succeeded".
        definite = status < 500 and code not in MAYBE_APPLIED
        return DeliveryFailed(f"Slack answered {code or f'HTTP {status}'}", definite=definite)
    reason = getattr(error, "reason", None)
    if isinstance(error, ConnectionRefusedError) or isinstance(reason, ConnectionRefusedError):
        return DeliveryFailed("Slack refused the connection", definite=True)
    if isinstance(error, urllib.error.URLError) and isinstance(reason, OSError):
        # urllib wraps what fails before the request is sent (DNS, connect); a timeout or a
        # dropped connection while waiting for the answer surfaces unwrapped.
        return DeliveryFailed(f"Slack could not be reached ({type(reason).__name__})", definite=True)
    return DeliveryFailed(f"Slack call failed ({type(error).__name__}); it may or may not have been posted",
                          definite=False)
