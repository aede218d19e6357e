"""The emulated Slack Web API methods.

:class:`SlackWebApi` is transport-free: the HTTP layer in
:mod:`sandbox.slack_emulator` decodes a request into ``(method, args, token)``
and this module answers with an :class:`ApiResponse`.  Every call runs under
:attr:`SlackState.lock`, is recorded in the call log (refused calls too) and
either mutates the state or changes nothing at all.
"""

from __future__ import annotations

import base64
import binascii
import copy
import logging
import secrets
import time
from collections.abc import Callable

from sandbox.slack_messages import ApiMethodError, ApiResponse, MessageWriter, flag
from sandbox.slack_state import Record, SlackState

log = logging.getLogger("rollbot.sandbox.slack")

Handler = Callable[[Record], Record]

__all__ = ["ApiMethodError", "ApiResponse", "SlackWebApi"]

APP_LEVEL_METHODS = frozenset({"apps.connections.open"})  # called with the app-level token (xapp-…)


class SlackWebApi(MessageWriter):
    """Implements the Web API methods Rollbot uses on top of a :class:`SlackState`."""

    def __init__(self, state: SlackState) -> None:
        super().__init__(state)
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.replies": self._conversations_replies,
            "conversations.history": self._conversations_history,
            "conversations.join": self._conversations_join,
        }

    @property
    def methods(self) -> list[str]:
        """Names of the implemented Web API methods."""
        return sorted(self._handlers)

    def call(self, method: str, args: Record, token: str | None) -> ApiResponse:
        """Run one Web API call and record it (whatever the outcome)."""
        with self.state.lock:
            retry_after = self.state.take_rate_limit(method)
            if retry_after is not None:
                self.state.record_call(method, args, 429, "ratelimited")
                log.info("%s -> 429 ratelimited (Retry-After %s)", method, retry_after)
                return ApiResponse(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})
            fault = self.state.take_fault(method)
            if fault is not None and fault[0] == "error_before":
                self.state.record_call(method, args, 503, "service_unavailable", fault[0])
                return ApiResponse(503, {"ok": False, "error": "service_unavailable"})
            if fault is not None and fault[0] == "ratelimited":
                self.state.record_call(method, args, 429, "ratelimited", fault[0])
                return ApiResponse(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
            try:
                handler = self._handlers.get(method)
                if handler is None:
                    raise ApiMethodError("unknown_method")
                if not token:
                    raise ApiMethodError("not_authed")
                app_level = method in APP_LEVEL_METHODS
                if token != (self.state.app_token if app_level else self.state.bot_token):
                    # Slack's answer for a bot token on an app-level method, and the other way round
                    wrong_kind = token in (self.state.app_token, self.state.bot_token)
                    raise ApiMethodError("not_allowed_token_type" if wrong_kind else "invalid_auth")
                body: Record = {"ok": True, **handler(args)}
                error = None
            except ApiMethodError as failure:
                body = {"ok": False, "error": failure.error, **failure.extra}
                error = failure.error
            applied_fault = fault[0] if fault is not None else None
            self.state.record_call(method, args, 500 if applied_fault == "error_after" else 200,
                                   "internal_error" if applied_fault == "internal_error_after" else error, applied_fault)
        log.debug("%s(%s) -> %s", method, sorted(args), error or "ok")
        if fault is None:
            return ApiResponse(200, body)
        name, delay = fault
        if name == "error_after":
            return ApiResponse(500, "<html>Internal Server Error</html>")
        if name == "internal_error_after":
            return ApiResponse(200, {"ok": False, "error": "internal_error"})
        return ApiResponse(200, body, drop=name == "drop_after", delay=delay)

    def _apps_connections_open(self, args: Record) -> Record:
        """A WebSocket address for Socket Mode, with a one-time ticket (sandbox.socket_mode)."""
        return {"url": self.state.socket_mode.new_url()}

    def _auth_test(self, args: Record) -> Record:
        return {
            "url": f"https://{self.state.team_domain}.slack.com/",
            "team": "Rollbot Sandbox",
            "team_id": self.state.team_id,
            "user": "rollbot",
            "user_id": self.state.bot_user_id,
            "bot_id": self.state.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: Record) -> Record:
        channel = self._channel(args)
        if channel[:1] in ("U", "W"):  # Slack posts to a user's ID in the app's DM with them
            dm = self.state.dm_channel(channel)
            if dm is None:
                raise ApiMethodError("channel_not_found")
            channel = dm
        text, blocks = self._content("chat.postMessage", args)
        message = self._new_message(channel, text, blocks, args)
        return {"channel": channel, "ts": message["ts"], "message": copy.deepcopy(message)}

    def _chat_update(self, args: Record) -> Record:
        channel = self._channel(args)
        message = self.state.find_message(channel, str(args.get("ts", "")))
        if message is None:
            raise ApiMethodError("message_not_found")
        if message.get("bot_id") != self.state.bot_id:
            raise ApiMethodError("cant_update_message")
        text, blocks = self._content("chat.update", args)
        if "text" in args:
            message["text"] = text
        if "blocks" in args:
            message["blocks"] = blocks
        if "attachments" in args:
            message["attachments"] = copy.deepcopy(args["attachments"])
        message["edited"] = {"user": self.state.bot_user_id, "ts": self.state.next_ts()}
        return {"channel": channel, "ts": message["ts"], "text": message["text"], "message": copy.deepcopy(message)}

    def _chat_delete(self, args: Record) -> Record:
        channel = self._channel(args, posting=False)
        message = self.state.find_message(channel, str(args.get("ts", "")))
        if message is None:
            raise ApiMethodError("message_not_found")
        self.state.remove_message(message)
        return {"channel": channel, "ts": message["ts"]}

    def _chat_post_ephemeral(self, args: Record) -> Record:
        channel = self._channel(args)
        user = args.get("user")
        if not isinstance(user, str) or not user:
            raise ApiMethodError("user_not_found")
        text, blocks = self._content("chat.postEphemeral", args)
        ephemeral = self._ephemeral(channel, user, text, blocks, args.get("thread_ts"), "chat.postEphemeral")
        return {"message_ts": ephemeral["ts"]}

    def _use_trigger(self, args: Record) -> str:
        """Check (without consuming) the ``trigger_id`` argument; returns its user."""
        grant = self.state.trigger(str(args.get("trigger_id") or ""))
        if grant is None or grant.used:
            raise ApiMethodError("invalid_trigger_id")
        if time.monotonic() - grant.issued_at > self.state.trigger_expiry:
            raise ApiMethodError("expired_trigger_id")
        return grant.user_id

    def _consume_trigger(self, args: Record) -> None:
        grant = self.state.trigger(str(args.get("trigger_id")))
        if grant is not None:
            grant.used = True

    def _new_view(self, view: Record, user: str, previous: Record | None) -> Record:
        view_id = self.state.new_id("V")
        record: Record = {
            "callback_id": "",
            "external_id": "",
            "private_metadata": "",
            "clear_on_close": False,
            "notify_on_close": False,
            **view,
            "id": view_id,
            "team_id": self.state.team_id,
            "app_id": self.state.app_id,
            "bot_id": self.state.bot_id,
            "app_installed_team_id": self.state.team_id,
            "hash": _view_hash(),
            "user": user,
            "state": {"values": {}},
            "root_view_id": previous["root_view_id"] if previous else view_id,
            "previous_view_id": previous["id"] if previous else None,
        }
        self.state.store_view(record)
        return record

    def _views_open(self, args: Record) -> Record:
        user = self._use_trigger(args)
        view = self._check_view("views.open", args.get("view"))
        self._consume_trigger(args)
        return {"view": copy.deepcopy(self._new_view(view, user, None))}

    def _views_push(self, args: Record) -> Record:
        user = self._use_trigger(args)
        view = self._check_view("views.push", args.get("view"))
        self._consume_trigger(args)
        previous = self.state.latest_view_of(user)
        return {"view": copy.deepcopy(self._new_view(view, user, previous))}

    def _views_update(self, args: Record) -> Record:
        current = self.state.find_view(args.get("view_id"), args.get("external_id"))
        if current is None:
            raise ApiMethodError("not_found")
        expected_hash = args.get("hash")
        if expected_hash and expected_hash != current["hash"]:
            raise ApiMethodError("hash_conflict")
        view = self._check_view("views.update", args.get("view"))
        keep = {
            k: current[k]
            for k in (
                "id",
                "team_id",
                "app_id",
                "bot_id",
                "app_installed_team_id",
                "user",
                "state",
                "root_view_id",
                "previous_view_id",
            )
        }
        record: Record = {
            "callback_id": "",
            "external_id": current.get("external_id", ""),
            "private_metadata": "",
            **view,
            **keep,
            "hash": _view_hash(),
        }
        self.state.store_view(record)
        return {"view": copy.deepcopy(record)}

    def _views_publish(self, args: Record) -> Record:
        user = str(args.get("user_id", ""))
        if self.state.lookup_user(user) is None:
            raise ApiMethodError("user_not_found")
        view = self._check_view("views.publish", args.get("view"))
        if view.get("type") != "home":
            raise ApiMethodError("invalid_arguments", errors=["views.publish takes a view of type home"])
        record: Record = {**view, "id": self.state.new_id("V"), "team_id": self.state.team_id,
                          "app_id": self.state.app_id, "hash": _view_hash(), "user": user}
        self.state.publish_home(user, record)
        return {"view": copy.deepcopy(record)}

    def _users_info(self, args: Record) -> Record:
        user = self.state.lookup_user(str(args.get("user", "")))
        if user is None:
            raise ApiMethodError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _usergroups_users_list(self, args: Record) -> Record:
        group = self.state.lookup_usergroup(str(args.get("usergroup", "")))
        if group is None:
            raise ApiMethodError("no_such_subteam")
        return {"users": list(group["users"])}

    def _readable(self, args: Record) -> str:
        channel = self._channel(args, posting=False)
        if channel[:1] in ("U", "W"):  # history is read by the conversation's ID, not a user's
            raise ApiMethodError("channel_not_found")
        if not self.state.bot_is_member(channel):
            raise ApiMethodError("not_in_channel")
        return channel

    def _conversations_join(self, args: Record) -> Record:
        channel = self._channel(args, posting=False)
        self.state.join(channel)
        return {"channel": {"id": channel, "is_member": True}}

    def _conversations_replies(self, args: Record) -> Record:
        channel = self._readable(args)
        ts = str(args.get("ts", ""))
        message = self.state.find_message(channel, ts)
        if message is None:
            raise ApiMethodError("thread_not_found")
        if message.get("thread_ts") not in (None, ts):
            return _page([message], args, oldest_first=True)
        return _page([message, *self.state.thread(channel, ts)], args, oldest_first=True)

    def _conversations_history(self, args: Record) -> Record:
        """Top-level messages (and thread broadcasts) of a channel, newest first."""
        channel = self._readable(args)
        found = [m for m in self.state.messages(channel)
                 if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"]
        return _page(found, args, oldest_first=False)


def _page(messages: list[Record], args: Record, *, oldest_first: bool) -> Record:
    """One page of ``messages`` as Slack pages them: ``oldest``/``latest`` (exclusive unless
    ``inclusive``), ``limit`` (1-999, default 100 for history, 1000 for replies) and an opaque
    ``cursor``; metadata only with ``include_all_metadata``."""
    try:
        oldest = float(str(args.get("oldest") or 0))
        latest = float(str(args.get("latest") or "inf"))
        limit = int(str(args.get("limit") or (1000 if oldest_first else 100)))
        start = int(base64.b64decode(str(args["cursor"])).decode().removeprefix("offset:")) if args.get("cursor") else 0
    except (ValueError, UnicodeDecodeError, binascii.Error) as error:
        raise ApiMethodError("invalid_arguments") from error
    inclusive = flag(args.get("inclusive"))
    with_metadata = flag(args.get("include_all_metadata"))

    def inside(ts: float) -> bool:
        return (oldest <= ts <= latest) if inclusive else (oldest < ts < latest)

    selected = [m for m in messages if inside(float(m["ts"]))]
    selected.sort(key=lambda m: float(m["ts"]), reverse=not oldest_first)
    page = selected[start:start + max(1, min(limit, 1000))]
    if not with_metadata:
        page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
    more = start + len(page) < len(selected)
    cursor = base64.b64encode(f"offset:{start + len(page)}".encode()).decode() if more else ""
    return {"messages": copy.deepcopy(page), "has_more": more, "response_metadata": {"next_cursor": cursor}}


def _view_hash() -> str:
    return f"{int(time.time())}.{secrets.token_hex(4)}"
