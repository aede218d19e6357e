"""User-group lookups: cached in Redis, the last copy used when Slack cannot answer, and a clear
"cannot check" instead of "no role" when nothing is known."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.config_file import parse_policy
from bot.directory import SlackDirectory
from handlers.ports import DirectoryUnavailable
from handlers.roles import UNAVAILABLE, Roles
from integrations.redis_state import RedisState


class FlakySlack:
    """A hand-written stand-in for the one WebClient method the directory uses."""

    def __init__(self) -> None:
        self.members = ["U1"]
        self.down = False
        self.calls = 0

    def usergroups_users_list(self, usergroup: str) -> dict:
        self.calls += 1
        if self.down:
            raise SlackApiError("down", SlackResponse(client=None, http_verb="GET", api_url="", req_args={},
                                                      data={"ok": False, "error": "fatal_error"}, headers={},
                                                      status_code=500))
        return {"ok": True, "users": list(self.members)}


def test_cache_then_last_copy_then_unavailable(redis_url: str) -> None:
    slack, redis = FlakySlack(), RedisState(redis_url)
    directory = SlackDirectory(slack, redis, ttl_seconds=60)  # type: ignore[arg-type]
    assert directory.group_members("S1") == {"U1"}
    assert directory.group_members("S1") == {"U1"} and slack.calls == 1  # cached
    redis.client.delete("rollbot:cache:usergroup:S1")  # the fresh copy expires
    slack.down = True
    assert directory.group_members("S1") == {"U1"}  # the last copy stands in
    with pytest.raises(DirectoryUnavailable):
        directory.group_members("S2")  # never read: nothing to stand in


def test_an_unreadable_group_is_reported_as_such_not_as_no_role(redis_url: str) -> None:
    slack = FlakySlack()
    slack.down = True
    policy = parse_policy({
        "roles": {"lead": {"users": ["U9"], "groups": ["S1"]}, "engineer": {"users": ["U8"]}, "dba": {"users": ["U7"]}},
        "environments": {"prod": {"channel": "C1"}},
    })
    roles = Roles(policy, SlackDirectory(slack, RedisState(redis_url)))  # type: ignore[arg-type]
    assert roles.request_refusal("U1", "prod") == UNAVAILABLE
    assert roles.request_refusal("U9", "prod") is None  # named directly: no lookup needed
