"""In-memory state of the Slack emulator and its inspection API.

:class:`SlackState` owns everything the emulated workspace remembers:
messages, ephemeral messages, views, issued trigger ids and response URLs,
the user directory; the channel messages are
:class:`sandbox.slack_channel_messages.ChannelMessages`', the log of every API call and the
scripted rate limits and faults :class:`sandbox.slack_calls.CallLedger`'s.  One
re-entrant lock guards all of it; every public inspection method takes the
lock and returns deep copies, so tests may freely mutate what they get back.

The methods under "mutation helpers" are used by the Web API implementation
(:mod:`sandbox.slack_api`) while it holds :attr:`SlackState.lock`.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.slack_calls import CallLedger, Record
from sandbox.slack_channel_messages import ChannelMessages

RESPONSE_URL_MAX_USES: Final = 5
"""Slack accepts at most five posts to one response_url."""


@dataclass
class TriggerGrant:
    """A trigger id handed out by :meth:`SlackState.new_trigger_id`."""

    user_id: str
    issued_at: float
    used: bool = False


@dataclass
class ResponseUrlGrant:
    """What a response URL token is bound to and how often it was used."""

    token: str
    channel: str | None
    user: str | None
    message_ts: str | None
    uses: int = 0
    last_posted_ts: str | None = None




class SlackState(CallLedger, ChannelMessages):
    """Thread-safe store behind :class:`sandbox.slack_emulator.SlackEmulator`.

    Args:
        bot_token: The only token the emulated Web API accepts.
        bot_user_id: User id of the bot (author of every posted message).
        bot_id: Bot id (``B...``) reported on messages and by ``auth.test``.
        team_id: Workspace id.
    """

    def __init__(self, *, bot_token: str, bot_user_id: str, bot_id: str, team_id: str) -> None:
        self.bot_token = bot_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.app_id = "A0ROLLBOT"
        """App id reported on views and in interaction payloads."""
        self.app_token: str | None = None
        """The app-level token (``xapp-…``) ``apps.connections.open`` takes (Socket Mode), when attached."""
        self.socket_mode: Any = None
        """The Socket Mode server (sandbox.socket_mode) whose addresses ``apps.connections.open`` hands out."""
        self.team_domain = "rollbot-sandbox"
        """Workspace domain used in URLs and payloads."""
        self.trigger_expiry: float = 3.0
        """Seconds a trigger id stays valid for ``views.open``/``views.push``."""
        self.lock = threading.RLock()
        """Guards all state; held by the Web API for the duration of a call."""
        self.validation_errors: list[Record] = []
        """Every refused Block Kit / view payload: ``{"method", "errors", "payload"}``."""
        self.response_posts: dict[str, list[Record]] = {}
        """Accepted response_url posts, keyed by the URL's token."""
        self._users: dict[str, Record] = {}
        self._usergroups: dict[str, Record] = {}
        self._archived: set[str] = set()
        self._left: set[str] = set()  # public channels the bot is not a member of (it may still post)
        self._ids = itertools.count(1)
        self._last_ts_micros = 0
        self._clear_activity()

    def _clear_activity(self) -> None:
        """Forget messages, views, calls and grants (not the directory)."""
        self._clear_messages()
        self._ephemerals: list[Record] = []
        self._views: dict[str, Record] = {}
        self._homes: dict[str, Record] = {}
        self._triggers: dict[str, TriggerGrant] = {}
        self._response_urls: dict[str, ResponseUrlGrant] = {}
        self._clear_calls()
        self.validation_errors.clear()
        self.response_posts.clear()

    # ------------------------------------------------------------------
    # Directory and scripting (test setup)

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        tz: str = "UTC",
        is_bot: bool = False,
    ) -> Record:
        """Register a workspace user for ``users.info``; returns the user object."""
        real = real_name if real_name is not None else name
        user: Record = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real,
            "deleted": False,
            "tz": tz,
            "tz_offset": _tz_offset(tz),
            "is_bot": is_bot,
            "profile": {"display_name": name, "real_name": real},
        }
        with self.lock:
            self._users[user_id] = user
            return copy.deepcopy(user)

    def add_usergroup(self, group_id: str, handle: str, user_ids: list[str]) -> None:
        """Register a user group (``S...``) for ``usergroups.users.list``."""
        with self.lock:
            self._usergroups[group_id] = {"id": group_id, "handle": handle, "users": list(user_ids)}

    def archive_channel(self, channel_id: str) -> None:
        """Mark a channel archived: posting to it then fails with ``is_archived``."""
        with self.lock:
            self._archived.add(channel_id)

    def remove_bot_from(self, channel_id: str) -> None:
        """The bot is no longer a member of ``channel_id``: it can still post there (``chat:write.public``)
        but reading it answers ``not_in_channel`` until ``conversations.join``."""
        with self.lock:
            self._left.add(channel_id)

    def bot_is_member(self, channel_id: str) -> bool:
        return channel_id not in self._left

    def join(self, channel_id: str) -> None:
        self._left.discard(channel_id)

    def unarchive_channel(self, channel_id: str) -> None:
        with self.lock:
            self._archived.discard(channel_id)

    def new_trigger_id(self, user_id: str) -> str:
        """Issue a single-use trigger id for ``user_id`` (valid :attr:`trigger_expiry` seconds)."""
        with self.lock:
            trigger_id = f"{next(self._ids)}.{int(time.time())}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = TriggerGrant(user_id=user_id, issued_at=time.monotonic())
        return trigger_id

    def inject_message(
        self,
        channel: str,
        text: str,
        *,
        user: str,
        blocks: list[Record] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Store a message as if a human ``user`` had posted it; returns its ts."""
        with self.lock:
            message: Record = {
                "type": "message",
                "ts": self.next_ts(),
                "channel": channel,
                "user": user,
                "team": self.team_id,
                "text": text,
                "blocks": copy.deepcopy(blocks) if blocks else [],
            }
            if thread_ts is not None:
                message["thread_ts"] = thread_ts
            self.append_message(message)
            return str(message["ts"])

    def reset(self) -> None:
        """Forget all activity (messages, views, calls, errors, grants, scripts).

        Registered users, user groups and archived channels are kept.
        """
        with self.lock:
            self._clear_activity()

    # ------------------------------------------------------------------
    # Inspection (copies)

    def ephemerals(self, user: str | None = None, channel: str | None = None) -> list[Record]:
        """Ephemeral messages, optionally only those shown to ``user`` / in ``channel``.

        The ``user`` key of an ephemeral record is its recipient.
        """
        with self.lock:
            found = [
                e
                for e in self._ephemerals
                if (user is None or e["user"] == user) and (channel is None or e["channel"] == channel)
            ]
            return copy.deepcopy(found)

    @property
    def views(self) -> dict[str, Record]:
        """All opened/pushed views by id (copies)."""
        with self.lock:
            return copy.deepcopy(self._views)

    def home(self, user_id: str) -> Record | None:
        """The App Home view last published for ``user_id`` (a copy), or ``None``."""
        with self.lock:
            home = self._homes.get(user_id)
            return copy.deepcopy(home) if home else None

    def snapshot(self) -> Record:
        """JSON-serialisable dump used by ``GET /_emulator/state``."""
        with self.lock:
            return copy.deepcopy(
                {
                    "messages": self._messages,
                    "ephemerals": self._ephemerals,
                    "views": self._views,
                    "homes": self._homes,
                    "validation_errors": self.validation_errors,
                    "calls": len(self._calls),
                }
            )

    # ------------------------------------------------------------------
    # Mutation helpers (callers hold ``lock``)

    def next_ts(self) -> str:
        """A message timestamp strictly greater than every earlier one."""
        with self.lock:
            micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
            self._last_ts_micros = micros
        seconds, fraction = divmod(micros, 1_000_000)
        return f"{seconds}.{fraction:06d}"

    def new_id(self, prefix: str) -> str:
        """A fresh Slack-looking id such as ``V0SBX000007``."""
        with self.lock:
            return f"{prefix}0SBX{next(self._ids):06d}"

    def publish_home(self, user_id: str, view: Record) -> None:
        self._homes[user_id] = view

    def is_archived(self, channel: str) -> bool:
        """Whether ``archive_channel`` was called for ``channel``."""
        return channel in self._archived

    def find_ephemeral(self, ts: str) -> Record | None:
        """The live ephemeral record with ``ts``, or ``None``."""
        for ephemeral in self._ephemerals:
            if ephemeral["ts"] == ts:
                return ephemeral
        return None

    def append_ephemeral(self, ephemeral: Record) -> None:
        """Store an ephemeral message record."""
        self._ephemerals.append(ephemeral)

    def remove_ephemeral(self, ephemeral: Record) -> None:
        """Delete an ephemeral message record."""
        self._ephemerals.remove(ephemeral)

    def store_view(self, view: Record) -> None:
        """Insert or replace a view record by its ``id``."""
        self._views[view["id"]] = view

    def find_view(self, view_id: str | None, external_id: str | None) -> Record | None:
        """The live view with ``view_id`` or else ``external_id``."""
        if view_id:
            return self._views.get(view_id)
        if external_id:
            for view in self._views.values():
                if view.get("external_id") == external_id:
                    return view
        return None

    def latest_view_of(self, user_id: str) -> Record | None:
        """The most recently stored view opened for ``user_id``."""
        mine = [v for v in self._views.values() if v.get("user") == user_id]
        return mine[-1] if mine else None

    def trigger(self, trigger_id: str) -> TriggerGrant | None:
        """The grant behind a trigger id, or ``None`` if it was never issued."""
        return self._triggers.get(trigger_id)

    def lookup_user(self, user_id: str) -> Record | None:
        """A registered user object (live), or ``None``."""
        return self._users.get(user_id)

    def dm_channel(self, user_id: str) -> str | None:
        """The app's DM (``D…``) with a registered user, as Slack opens it when the bot posts to the
        user's ID; ``None`` for an unknown user."""
        if user_id not in self._users:
            return None
        return "D" + user_id[1:]

    def dm_user(self, channel: str) -> str | None:
        """Whose DM with the app ``channel`` is (None when it is not a DM)."""
        if not channel.startswith("D"):
            return None
        return next((u for u in self._users if "D" + u[1:] == channel), None)

    def lookup_usergroup(self, group_id: str) -> Record | None:
        """A registered user group (live), or ``None``."""
        return self._usergroups.get(group_id)

    def register_response_url(self, channel: str | None, user: str | None, message_ts: str | None) -> str:
        """Create a response URL grant and return its token."""
        token = secrets.token_urlsafe(18)
        with self.lock:
            self._response_urls[token] = ResponseUrlGrant(token, channel, user, message_ts)
        return token

    def response_url(self, token: str) -> ResponseUrlGrant | None:
        """The grant behind a response URL token, or ``None``."""
        return self._response_urls.get(token)



def _tz_offset(tz: str) -> int:
    """Current UTC offset of an IANA zone in seconds (0 if unknown)."""
    try:
        offset = datetime.now(ZoneInfo(tz)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return 0
    return int(offset.total_seconds()) if offset is not None else 0
