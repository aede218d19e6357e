"""The Slack app manifest asks for exactly the scopes the code uses.

The story below goes through every way Rollbot talks to Slack: a slash command; a request's root
message and team notification, posted in a channel the bot is not a member of and lost on the
way, so it joins and reads the channel and the thread back; a refused approval (an ephemeral, and
a user-group lookup); the deciding one (redraws, the execution); App Home; the decision matrix's
modal, its update and the form it pushes; the Deny and Resolve modals. Every Web API method the
Slack emulator saw is mapped to the scopes Slack documents for it, and the union has to be the
manifest's list: a scope missing fails a call in a real workspace, a scope too many is asked of
every admin who installs the app for nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.manifest import manifest
from sandbox.team import ALICE, BOB, CAROL, CHANNEL
from tests.world import BotServer, World, wait_until

ROOT = Path(__file__).resolve().parents[2]

# Slack's documented bot-token scopes per Web API method (docs.slack.dev/reference/methods).
# conversations.history and .replies need the scope of the channel's type: an incident channel
# may be public (channels:history) or private (groups:history), so both are needed.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    "chat.postMessage": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "chat.update": {"chat:write"},
    "conversations.history": {"channels:history", "groups:history"},
    "conversations.replies": {"channels:history", "groups:history"},
    "conversations.join": {"channels:join"},
    "usergroups.users.list": {"usergroups:read"},
    "views.open": set(),
    "views.update": set(),
    "views.push": set(),
    "views.publish": set(),
}


def _text(item: dict) -> str:
    return json.dumps(item.get("blocks") or [], ensure_ascii=False) + (item.get("text") or "")


def _root(world: World) -> dict | None:
    roots = [m for m in world.slack.messages(CHANNEL) if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
    return roots[0] if roots else None


def _view(world: World, callback_id: str, user: str) -> dict:
    return wait_until(lambda: next((v for v in reversed(list(world.slack.views.values()))
                                    if v.get("callback_id") == callback_id and v.get("user") == user), None),
                      message=f"the {callback_id} view")


def test_the_manifest_grants_exactly_the_scopes_of_the_methods_called(world: World, bot: BotServer) -> None:
    client = bot.client(world)
    # A public channel the bot only posts in (chat:write.public), and its first two posts lost.
    world.slack.remove_bot_from(CHANNEL)
    world.slack.script_fault("chat.postMessage", "drop_after", times=2)
    assert client.command(ALICE, "code prod checkout returns 500", channel_id=CHANNEL).status_code == 200
    root = world.work_until(lambda: _root(world), message="the root message")
    wait_until(lambda: world.slack.thread(CHANNEL, root["ts"]), message="the team notification")

    client.click(BOB, channel=CHANNEL, message_ts=root["ts"], action_id="approve")  # an engineer: leads are a group
    wait_until(lambda: any("`lead`" in _text(e) for e in world.slack.ephemerals(user=BOB)), message="Bob's refusal")
    client.click(BOB, channel=CHANNEL, message_ts=root["ts"], action_id="deny")
    _view(world, "deny_modal", BOB)
    client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="approve")
    world.work_until(lambda: any("Verified" in _text(m) for m in world.slack.thread(CHANNEL, root["ts"])),
                     message="the verification")
    client.click(CAROL, channel=CHANNEL, message_ts=root["ts"], action_id="resolve")
    _view(world, "resolve_modal", CAROL)

    assert client.event({"type": "app_home_opened", "user": BOB, "tab": "home", "channel": "D01BOB"}).status_code == 200
    assert client.command(ALICE, "decide", channel_id=CHANNEL).status_code == 200
    matrix = _view(world, "decide_modal", ALICE)
    client.click_in_view(ALICE, matrix["id"], "decide_issue", "Critical bug")
    wait_until(lambda: "Recommended:*" in _text(world.slack.views[matrix["id"]]), message="the recommendation")
    start = client.find_action(world.slack.views[matrix["id"]], "decide_start")
    client.click_in_view(ALICE, matrix["id"], "decide_start", start["value"])
    _view(world, "decided_request", ALICE)
    wait_until(lambda: world.slack.calls_to("views.publish"), message="App Home")

    # The emulator also records answers that are not Web API calls and need no scope: an ack's
    # body ("command_ack") and posts to a command's response_url.
    called = {call["method"] for call in world.slack.calls} - {"command_ack", "response_url"}
    unknown = called - set(METHOD_SCOPES)
    assert not unknown, f"add the scopes Slack documents for {sorted(unknown)} to METHOD_SCOPES"
    assert called == set(METHOD_SCOPES), f"the story no longer calls {sorted(set(METHOD_SCOPES) - called)}"
    needed = set().union(*(METHOD_SCOPES[method] for method in called))
    needed |= {"commands"}  # the slash command
    needed |= {"chat:write.public"}  # the root message went to a channel the bot had left (above)
    granted = manifest("https://rollbot.example.com")["oauth_config"]["scopes"]["bot"]
    assert sorted(granted) == sorted(needed)
    assert manifest(None)["oauth_config"]["scopes"]["bot"] == granted  # Socket Mode: the same
    for variant in ("http", "socket"):  # and the files in manifests/ say so too
        written = json.loads((ROOT / "manifests" / f"slack-app-{variant}.json").read_text())
        assert sorted(written["oauth_config"]["scopes"]["bot"]) == sorted(needed)
