"""Slack user-group membership for role checks, cached in Redis (the user-group cache)."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from integrations.redis_state import RedisState

log = logging.getLogger("rollbot.directory")


class SlackDirectory:
    def __init__(self, client: WebClient, cache: RedisState, ttl_seconds: int = 300) -> None:
        self._client = client
        self._cache = cache
        self._ttl = ttl_seconds

    def group_members(self, group_id: str) -> frozenset[str]:
        key = f"usergroup:{group_id}"
        cached = self._cache.cache_get(key)
        if isinstance(cached, list):
            return frozenset(cached)
        try:
            users = self._client.usergroups_users_list(usergroup=group_id).get("users") or []
        except SlackApiError as error:
            log.warning("cannot read user group %s: %s", group_id, error.response.get("error"))
            return frozenset()
        self._cache.cache_set(key, list(users), self._ttl)
        return frozenset(users)
