"""Slack user-group membership for role checks, cached in Redis (the user-group cache).

A fresh copy is kept for five minutes; the last copy ever read is kept too, and used when Slack
cannot be asked. With neither, the lookup raises DirectoryUnavailable, so a Slack hiccup is
reported as such and never as "you hold no role"."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from handlers.ports import DirectoryUnavailable
from integrations.redis_state import RedisState

log = logging.getLogger("rollbot.directory")


class SlackDirectory:
    def __init__(self, client: WebClient, cache: RedisState, ttl_seconds: int = 300) -> None:
        self._client = client
        self._cache = cache
        self._ttl = ttl_seconds

    def group_members(self, group_id: str) -> frozenset[str]:
        fresh = self._cache.cache_get(f"usergroup:{group_id}")
        if isinstance(fresh, list):
            return frozenset(fresh)
        try:
            users = list(self._client.usergroups_users_list(usergroup=group_id).get("users") or [])
        except Exception as error:
            last = self._cache.cache_get(f"usergroup-last:{group_id}")
            if isinstance(last, list):
                log.warning("user group %s unreadable (%s); using the last copy", group_id, type(error).__name__)
                return frozenset(last)
            raise DirectoryUnavailable(f"cannot read user group {group_id}") from None
        self._cache.cache_set(f"usergroup:{group_id}", users, self._ttl)
        self._cache.cache_set(f"usergroup-last:{group_id}", users, 30 * 86400)
        return frozenset(users)
