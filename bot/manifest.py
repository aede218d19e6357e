"""The Slack app manifest (HTTP or Socket Mode variant)."""

from __future__ import annotations

from typing import Any


def manifest(url: str | None) -> dict[str, Any]:
    events_url = f"{url.rstrip('/')}/slack/events" if url else None
    command: dict[str, Any] = {
        "command": "/rollback",
        "description": "Guided, approved, audited rollbacks",
        "usage_hint": "code prod [reason] | status | help",
        "should_escape": False,
    }
    interactivity: dict[str, Any] = {"is_enabled": True}
    events: dict[str, Any] = {"bot_events": ["app_home_opened"]}
    if events_url:
        command["url"] = events_url
        interactivity["request_url"] = events_url
        events["request_url"] = events_url
    return {
        "display_information": {
            "name": "Rollbot",
            "description": "Turns the rollback runbook into guided, approved, audited actions.",
            "background_color": "#1d3557",
        },
        "features": {
            # The Messages tab shows the follow-up reminders Rollbot DMs to their owners (posted to
            # the owner's user ID with chat:write, so no im:* scope); people cannot write to it.
            "app_home": {"home_tab_enabled": True, "messages_tab_enabled": True,
                         "messages_tab_read_only_enabled": True},
            "bot_user": {"display_name": "rollbot", "always_online": True},
            "slash_commands": [command],
        },
        "oauth_config": {
            "scopes": {
                # channels:history and groups:history: after a post whose outcome is unknown, the bot reads
                # the channel or thread back to find it (exactly-once messages); channels:join: to read a
                # public channel it posted in without being a member (chat:write.public).
                "bot": ["chat:write", "chat:write.public", "commands", "usergroups:read", "channels:history",
                        "groups:history", "channels:join"],
            }
        },
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": events_url is None,
            "token_rotation_enabled": False,
        },
    }
