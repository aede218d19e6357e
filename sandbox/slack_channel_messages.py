"""The Slack emulator's channel messages: top-level messages and thread replies in posting
order, indexed by channel and ts and by thread, so that a long run (the benchmark posts tens of
thousands) does not make every ``chat.update`` and reply scan all of them under the lock. A part
of :class:`sandbox.slack_state.SlackState`, under its lock; the live records are returned to the
Web API (which holds the lock), copies to everyone else."""

from __future__ import annotations

import copy
import threading

from sandbox.slack_calls import Record


class ChannelMessages:
    lock: threading.RLock

    def _clear_messages(self) -> None:
        self._messages: list[Record] = []
        self._by_ts: dict[tuple[str, str], Record] = {}
        self._threads: dict[tuple[str, str], list[Record]] = {}

    # -- inspection (copies) -------------------------------------------------------------------

    def messages(self, channel: str | None = None) -> list[Record]:
        """Channel messages (top level and thread replies) in posting order."""
        with self.lock:
            found = [m for m in self._messages if channel is None or m["channel"] == channel]
            return copy.deepcopy(found)

    def messages_since(self, start: int) -> tuple[list[Record], int]:
        """The messages posted from index ``start`` on (copies, as they are now), and the index to
        read from next."""
        with self.lock:
            return copy.deepcopy(self._messages[start:]), len(self._messages)

    def thread(self, channel: str, ts: str) -> list[Record]:
        """Replies (without the parent) in the thread started by ``ts``."""
        with self.lock:
            return copy.deepcopy(self._replies(channel, ts))

    def message(self, channel: str, ts: str) -> Record:
        """One channel message; raises ``KeyError`` if there is none."""
        with self.lock:
            found = self.find_message(channel, ts)
            if found is None:
                known = [m["ts"] for m in self._messages if m["channel"] == channel]
                raise KeyError(f"no message {ts!r} in channel {channel!r}; known ts: {known}")
            return copy.deepcopy(found)

    # -- the Web API's (live records; the caller holds the lock) ------------------------------

    def find_message(self, channel: str, ts: str) -> Record | None:
        """The live (uncopied) channel message, or ``None``."""
        return self._by_ts.get((channel, ts))

    def append_message(self, message: Record) -> None:
        """Store a channel message and maintain its thread parent's reply metadata."""
        self._messages.append(message)
        self._by_ts[(message["channel"], message["ts"])] = message
        thread_ts = message.get("thread_ts")
        if thread_ts is None or thread_ts == message["ts"]:
            return
        self._threads.setdefault((message["channel"], thread_ts), []).append(message)
        parent = self.find_message(message["channel"], thread_ts)
        if parent is None:
            return
        replies = self._replies(message["channel"], thread_ts)
        parent["thread_ts"] = thread_ts
        parent["reply_count"] = len(replies)
        parent["latest_reply"] = message["ts"]
        users = sorted({str(r.get("user")) for r in replies})
        parent["reply_users"] = users
        parent["reply_users_count"] = len(users)

    def remove_message(self, message: Record) -> None:
        """Delete a channel message (and fix its parent's ``reply_count``)."""
        self._messages.remove(message)
        self._by_ts.pop((message["channel"], message["ts"]), None)
        thread_ts = message.get("thread_ts")
        key = (message["channel"], thread_ts or "")
        replies = [reply for reply in self._threads.get(key, ()) if reply is not message]
        if replies:
            self._threads[key] = replies
        else:
            self._threads.pop(key, None)
        parent = self.find_message(message["channel"], thread_ts) if thread_ts else None
        if parent is not None and parent is not message:
            parent["reply_count"] = len(self._replies(message["channel"], thread_ts or ""))

    def _replies(self, channel: str, ts: str) -> list[Record]:
        """Live replies to ``ts`` in ``channel`` (parent excluded)."""
        return list(self._threads.get((channel, ts), ()))
