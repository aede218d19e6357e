"""Exactly-once Slack posts: each message about an incident has an identity (incident + key),
carried in its Slack ``metadata`` and kept in the store's message ledger. The standing reminders
(drill, review), which belong to no incident, have theirs too (series + number + first attempt),
in the standing ledger, and go through the same steps.

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
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.clock import Clock
from handlers.model import Incident
from handlers.ports import DeliveryFailed, Ledgers, MessageRecord

log = logging.getLogger("rollbot.slack")

EVENT_TYPE = "rollbot_incident_message"
STANDING_EVENT_TYPE = "rollbot_standing_message"
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


class _Message(Protocol):
    """One message to post once: its ledger row, the identity it carries in Slack, and how far
    back a read-back searches for it."""

    label: str
    log_extra: dict[str, Any]

    def begin(self, at: datetime) -> MessageRecord: ...
    def posted(self, ts: str) -> None: ...
    def unsettled(self) -> None: ...
    def not_posted(self) -> None: ...
    def metadata(self, since: datetime) -> dict[str, Any]: ...
    def oldest(self, since: datetime | None) -> datetime: ...


class _IncidentMessage:
    def __init__(self, ledger: Ledgers, incident: Incident, key: str) -> None:
        self._ledger, self._incident, self._key = ledger, incident, key
        self.label = f"{incident.ref}: message {key}"
        self.log_extra = {"incident": incident.id}

    def begin(self, at: datetime) -> MessageRecord:
        return self._ledger.begin_message(self._incident.id, self._key, at)

    def posted(self, ts: str) -> None:
        self._ledger.message_posted(self._incident.id, self._key, ts)

    def unsettled(self) -> None:
        self._ledger.message_unsettled(self._incident.id, self._key)

    def not_posted(self) -> None:
        self._ledger.message_not_posted(self._incident.id, self._key)

    def metadata(self, since: datetime) -> dict[str, Any]:
        return identity(self._incident, self._key)

    def oldest(self, since: datetime | None) -> datetime:
        return (since or self._incident.created_at) - HISTORY_SLACK


class _StandingMessage:
    """Reminder ``seq`` of a standing series. Its identity includes when its first attempt began,
    so two deployments sharing a channel never adopt each other's reminders."""

    def __init__(self, ledger: Ledgers, series: str, seq: int, clock: Clock) -> None:
        self._ledger, self._series, self._seq, self._clock = ledger, series, seq, clock
        self.label = f"{series} reminder {seq}"
        self.log_extra: dict[str, Any] = {}

    def begin(self, at: datetime) -> MessageRecord:
        return self._ledger.begin_standing(self._series, self._seq, at)

    def posted(self, ts: str) -> None:
        self._ledger.standing_posted(self._series, self._seq, ts, self._clock.now())

    def unsettled(self) -> None:
        self._ledger.standing_unsettled(self._series, self._seq)

    def not_posted(self) -> None:
        self._ledger.standing_not_posted(self._series, self._seq)

    def metadata(self, since: datetime) -> dict[str, Any]:
        return {"event_type": STANDING_EVENT_TYPE,
                "event_payload": {"series": self._series, "seq": self._seq,
                                  "since": since.astimezone(UTC).isoformat()}}

    def oldest(self, since: datetime | None) -> datetime:
        return (since or datetime.fromtimestamp(0, UTC)) - HISTORY_SLACK


class ReadBackFailed(Exception):
    """Slack could not be read: whether the message exists is still unknown."""


@dataclass(frozen=True)
class Posted:
    ts: str
    adopted: bool = False  # an earlier attempt had posted it: its content may be older than this one's


class OncePoster:
    def __init__(self, client: WebClient, ledger: Ledgers, clock: Clock, pace: Callable[[str], None],
                 read_back_tries: tuple[float, ...] = READ_BACK_TRIES) -> None:
        self._client = client
        self._ledger = ledger
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
        return self._once(_IncidentMessage(self._ledger, incident, key), channel, text, blocks, thread_ts, broadcast,
                          read_back)

    def post_standing(self, series: str, seq: int, channel: str, text: str, blocks: list[dict[str, Any]]) -> Posted:
        """Post reminder ``seq`` of a standing series once, in ``channel``, as ``post`` does."""
        return self._once(_StandingMessage(self._ledger, series, seq, self._clock), channel, text, blocks, None, False)

    def _once(self, message: _Message, channel: str, text: str, blocks: list[dict[str, Any]],
              thread_ts: str | None, broadcast: bool, read_back: bool = True) -> Posted:
        record = message.begin(self._clock.now())
        if record.state == "posted" and record.ts:
            return Posted(record.ts, adopted=True)
        if record.state == "busy":
            raise DeliveryFailed(f"another process is posting {message.label}", definite=False)
        if record.state == "doubt" and not read_back:
            message.unsettled()
            raise DeliveryFailed(f"{message.label} may have been posted and cannot be read back", definite=False)
        try:
            return self._post(message, channel, text, blocks, thread_ts, broadcast, record, read_back)
        except DeliveryFailed as failure:
            if failure.definite:
                message.not_posted()
            else:
                message.unsettled()
            raise
        except BaseException:
            message.unsettled()
            raise

    def _post(self, message: _Message, channel: str, text: str, blocks: list[dict[str, Any]],
              thread_ts: str | None, broadcast: bool, record: MessageRecord, read_back: bool = True) -> Posted:
        since = record.since
        if record.state == "doubt":
            found = self._settle(message, channel, thread_ts, since)
            if found:
                return Posted(found, adopted=True)
        extra: dict[str, Any] = {"thread_ts": thread_ts, "reply_broadcast": broadcast} if thread_ts else {}
        metadata = message.metadata(since or self._clock.now())
        unknown = record.state == "doubt"  # an earlier attempt may have posted it, however this one ends
        for attempt in range(POST_ATTEMPTS):
            try:
                self._pace(channel)
                response = self._client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                                         metadata=metadata, unfurl_links=False,
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
                log.warning("%s: Slack did not confirm it (%s); reading it back", message.label, failure,
                            extra=message.log_extra)
                found = self._settle(message, channel, thread_ts, since)
                if found:
                    return Posted(found, adopted=True)
                continue  # Slack does not have it: posting again cannot double it
            ts = str(response["ts"])
            message.posted(ts)
            return Posted(ts)
        raise DeliveryFailed(f"Slack did not confirm {message.label} after {POST_ATTEMPTS} tries", definite=False)

    def find(self, incident: Incident, key: str, channel: str, thread_ts: str | None = None) -> str | None:
        """Where message ``key`` is, without posting: the ledger first, then (if an attempt was
        made) Slack. None when it is certainly not in Slack; raises DeliveryFailed (uncertain)
        when that cannot be told now (Slack cannot be read, or another process is posting it)."""
        message = _IncidentMessage(self._ledger, incident, key)
        record = message.begin(self._clock.now())
        if record.state == "posted" and record.ts:
            return record.ts
        if record.state == "busy":
            raise DeliveryFailed(f"another process is posting {message.label}", definite=False)
        if record.state == "new":
            message.not_posted()
            return None
        try:
            found = self._settle(message, channel, thread_ts, record.since)
        except BaseException:
            message.unsettled()
            raise
        if found is None:
            message.not_posted()
        return found

    # -- reading back --------------------------------------------------------------------------

    def _settle(self, message: _Message, channel: str, thread_ts: str | None, since: datetime | None) -> str | None:
        """Read Slack back: the ts of the message if it is there (recorded as posted), None if
        Slack certainly lacks it; DeliveryFailed (uncertain) when Slack cannot be read."""
        failure: ReadBackFailed | None = None
        for wait in self._tries:
            time.sleep(wait)
            try:
                found = self._read_back(message, channel, thread_ts, since)
            except ReadBackFailed as error:
                failure = error
                continue
            failure = None
            if found:
                log.info("%s was posted after all; adopted", message.label, extra=message.log_extra)
                message.posted(found)
                return found
        if failure is not None:
            raise DeliveryFailed(f"Slack could not be read back ({failure}); {message.label} may exist",
                                 definite=False)
        return None

    def _read_back(self, message: _Message, channel: str, thread_ts: str | None,
                   since: datetime | None) -> str | None:
        me = self._me()
        wanted = message.metadata(since or self._clock.now())
        cursor = None
        joined = False
        page_number = 0
        while page_number < READ_PAGES:
            try:
                if thread_ts:
                    page = self._client.conversations_replies(channel=channel, ts=thread_ts, limit=200, cursor=cursor,
                                                              include_all_metadata=True)
                else:
                    oldest = message.oldest(since).timestamp()
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
            for found in page.get("messages") or []:
                metadata = found.get("metadata") or {}
                if (found.get("user") == me and metadata.get("event_type") == wanted["event_type"]
                        and metadata.get("event_payload") == wanted["event_payload"]):
                    return str(found["ts"])
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
