"""The `rollbot dev` console, in the tradition of Hubot's shell adapter and Errbot's text
backend: type `/rollback …` as a chosen user, see what the bot posts, click by number, switch
user, move time forward. `--demo` plays the whole story and exits."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from handlers.durations import parse_duration
from sandbox.devenv import DevEnvironment
from sandbox.render import Renderer
from sandbox.team import CHANNEL, PROJECT, USERS

VIEW = "view"  # the "channel" of what is clicked in a modal; its ts is the view's id

HELP = """Commands:
  /rollback …          run the slash command as the current user (try `/rollback code prod checkout 500`)
  as <name>            switch user: alice (engineer), bob (engineer), carol (lead), dan (dba)
  click <N|label>      click button, checkbox or modal option number N, or the newest one labelled so (`click approve`)
  time +<duration>     move the clock forward (e.g. `time +5m`) and let the worker run
  vercel env KEY=VALUE change a variable in the Vercel emulator, as someone in its dashboard would
  show                 redraw the channel and its threads
  help | quit"""


class Console:
    def __init__(self, dev: DevEnvironment, out: Callable[[str], None] = print) -> None:
        self.dev = dev
        self.out = out
        self.client = dev.client()
        self.user = "alice"
        names = {uid: name for name, (uid, _) in USERS.items()} | {"S01ONCALL": "oncall", CHANNEL: "incidents"}
        self.renderer = Renderer(names)
        self._seen: dict[str, str] = {}  # ts -> rendered text already printed
        self._seen_ephemeral = 0
        self._seen_views: dict[str, str] = {}  # view id -> its blocks as last shown

    # -- actions -----------------------------------------------------------------------------

    def run_line(self, line: str, prompt: Callable[[str], str] = input) -> bool:
        line = line.strip()
        if not line:
            return True
        if line in ("quit", "exit"):
            self.settle(prompt, wait=0.5)  # show what is still on its way
            return False
        if line == "help":
            self.out(HELP)
        elif line.startswith("/rollback"):
            response = self.client.command(USERS[self.user][0], line[len("/rollback"):].strip(), channel_id=CHANNEL)
            if response.status_code != 200:
                self.out(f"! the bot answered HTTP {response.status_code}")
            self.settle(prompt)
        elif line.startswith("as "):
            name = line[3:].strip().lower()
            if name not in USERS:
                self.out(f"! no user {name!r}; choose from {', '.join(USERS)}")
            else:
                self.user = name
                self.out(f"(you are now {name}: {USERS[name][1]})")
        elif line.startswith("click "):
            self.click(line[6:].strip(), prompt)
        elif line.startswith("time "):
            try:
                delta = parse_duration(line[5:].strip().lstrip("+"))
            except ValueError as error:
                self.out(f"! {error}")
                return True
            self.advance(delta, prompt)
        elif line.startswith("vercel env "):
            self.set_env(line[len("vercel env "):].strip())
        elif line == "show":
            self._seen.clear()
            self.settle(prompt, wait=0.2)
        else:
            self.out("! unknown input; type `help`")
        return True

    def set_env(self, assignment: str) -> None:
        key, sep, value = assignment.partition("=")
        known = self.dev.vercel.env_values(PROJECT)
        if not sep or key.strip() not in known:
            self.out(f"! write it like `vercel env API_URL=https://…`; the demo's variables: {', '.join(sorted(known))}")
            return
        self.dev.vercel.set_env_value(PROJECT, key.strip(), value.strip())
        self.out(f"(the Vercel emulator's {key.strip()} changed; production gets it at its next deployment)")

    def click(self, number: str, prompt: Callable[[str], str] = input) -> None:
        """Click by number (``click 6``) or by label, newest first (``click approve``)."""
        target = next((c for c in self.renderer.clickables if str(c.number) == number), None)
        if target is None and not number.isdigit():
            target = next((c for c in sorted(self.renderer.clickables, key=lambda c: -c.number)
                           if c.label.lower().startswith(number.lower())), None)
        if target is None:
            self.out(f"! nothing numbered or labelled {number!r}")
            return
        user_id = USERS[self.user][0]
        if target.channel == VIEW:  # an option or a button in a modal
            self.client.click_in_view(user_id, target.ts, target.action_id, target.value or "")
        elif target.kind == "checkbox":
            message = self.dev.slack.message(target.channel, target.ts)
            chosen = self._checked(message, target.action_id)
            chosen ^= {target.value or ""}
            options = [{"value": v, "text": {"type": "mrkdwn", "text": v}} for v in sorted(chosen)]
            self.client.click(user_id, channel=target.channel, message_ts=target.ts, action_id=target.action_id,
                              action_type="checkboxes", selected_options=options)
        else:
            self.client.click(user_id, channel=target.channel, message_ts=target.ts, action_id=target.action_id)
        self.settle(prompt)

    def advance(self, delta: timedelta, prompt: Callable[[str], str] = input) -> None:
        self.dev.clock.advance(delta)
        self.out(f"(time moves forward {line_duration(delta)})")
        self.dev.tick()
        self.settle(prompt)

    # -- output ------------------------------------------------------------------------------

    def settle(self, prompt: Callable[[str], str] = input, wait: float = 2.5) -> None:
        """Wait until the bot goes quiet (and no rollback is mid-execution), then print."""
        deadline, last = time.monotonic() + wait, None
        busy_until = time.monotonic() + 30
        while True:
            self.dev.tick()  # what the command queued (a request is planned by the worker) runs now
            state = json.dumps(self.dev.slack.snapshot(), sort_keys=True, default=str)
            executing = self._executing() and time.monotonic() < busy_until
            if (state == last or time.monotonic() >= deadline) and not executing:
                break
            last = state
            time.sleep(0.4)
        self.print_changes(prompt)

    def _executing(self) -> bool:
        container = self.dev.container
        return bool(container and any(i.status.value == "executing" for i in container.store.open_incidents()))

    def print_changes(self, prompt: Callable[[str], str] = input) -> None:
        for message in self.dev.slack.messages(CHANNEL):
            thread = message.get("thread_ts")
            is_reply = bool(thread and thread != message["ts"])
            content = json.dumps([message.get("text"), message.get("blocks")], sort_keys=True)
            if self._seen.get(message["ts"]) == content:
                continue
            updated = message["ts"] in self._seen
            self._seen[message["ts"]] = content
            rendered = self.renderer.message(message, CHANNEL, indent="    │ " if is_reply else "")
            where = "thread" if is_reply else "#incidents"
            self.out(f"\n{'(updated) ' if updated else ''}[{where}] rollbot:\n{rendered}")
        ephemerals = self.dev.slack.ephemerals()
        for ephemeral in ephemerals[self._seen_ephemeral:]:
            name = next((n for n, (uid, _) in USERS.items() if uid == ephemeral.get("user")), "?")
            self.out(f"\n[only {name} sees] {self.renderer.message(ephemeral, CHANNEL)}")
        self._seen_ephemeral = len(ephemerals)
        for view_id, view in list(self.dev.slack.views.items()):
            if view.get("type") != "modal":
                continue
            content = json.dumps(view.get("blocks"), sort_keys=True)
            if self._seen_views.get(view_id) == content:
                continue
            updated = view_id in self._seen_views
            self._seen_views[view_id] = content
            self.fill_modal(view, prompt, updated)

    def fill_modal(self, view: dict[str, Any], prompt: Callable[[str], str], updated: bool = False) -> None:
        """Show a modal; one with a submit button is filled in at the prompt (Enter keeps what
        Rollbot filled in), one without is clicked like a message (`click 3`)."""
        self.out(f"\n┌ {'(updated) ' if updated else ''}modal: {view['title']['text']}")
        for block in view.get("blocks", []):
            if block.get("type") != "input":
                for line in self.renderer.message({"blocks": [block], "ts": view["id"]}, VIEW).splitlines():
                    self.out("│ " + line)
        if not view.get("submit"):
            self.out("└ (click an option or button above by its number; the modal closes by itself)")
            return
        user = view.get("user") or USERS[self.user][0]
        for _attempt in range(3):
            values: dict[str, Any] = {}
            for block in view.get("blocks", []):
                if block.get("type") == "input":
                    values[block["block_id"]] = {block["element"].get("action_id", "value"):
                                                 self._answer(block, prompt)}
            response = self.client.submit_view(user, view["id"], values)
            errors = response.json().get("errors") if response.content else None
            if not errors:
                break
            for field, message in errors.items():
                self.out(f"│ ! {field}: {self.renderer.mrkdwn(message)}")
        self.out("└ submitted")
        self.settle(prompt)

    def _answer(self, block: dict[str, Any], prompt: Callable[[str], str]) -> dict[str, Any]:
        """One input of a modal, asked at the prompt, as Slack would send it back."""
        element, label = block["element"], block["label"]["text"]
        kind = element.get("type")
        if kind == "static_select":
            options = [o["value"] for o in element.get("options", [])]
            default = (element.get("initial_option") or {}).get("value") or (options[0] if options else "")
            answer = prompt(f"│ {label} ({' / '.join(options)}) [{default}]: ").strip() or default
            return {"type": kind, "selected_option": {"value": answer if answer in options else default}}
        if kind == "users_select":
            answer = prompt(f"│ {label} (one of {', '.join(USERS)}): ").strip().lower()
            chosen = USERS[answer][0] if answer in USERS else None
            return {"type": kind, "selected_user": chosen}
        if kind == "rich_text_input":
            answer = prompt(f"│ {label}: ")
            section = {"type": "rich_text_section", "elements": [{"type": "text", "text": answer}]}
            return {"type": kind, "rich_text_value": {"type": "rich_text", "elements": [section]}}
        default = element.get("initial_value") or ""
        hint = (block.get("hint") or {}).get("text")
        if hint:
            self.out(f"│   ({hint})")
        answer = prompt(f"│ {label}" + (f" [{default}]" if default else "") + ": ")
        return {"type": "plain_text_input", "value": answer or default}

    @staticmethod
    def _checked(message: dict[str, Any], action_id: str) -> set[str]:
        for block in message.get("blocks", []):
            accessory = block.get("accessory") or {}
            if accessory.get("action_id") == action_id:
                return {o["value"] for o in accessory.get("initial_options") or []}
        return set()


def line_duration(delta: timedelta) -> str:
    from handlers.durations import format_duration

    return format_duration(delta)


def interactive(dev: DevEnvironment) -> int:
    console = Console(dev)
    console.out("\nRollbot sandbox. You are alice (engineer) in #incidents. Type `help` for commands.\n")
    lines = 0
    while True:
        try:
            line = input(f"{console.user}> ")
        except KeyboardInterrupt:
            console.out("")
            return 0
        except EOFError:
            console.out("")
            if lines == 0 and not sys.stdin.isatty():
                return headless(dev)  # started with no input at all (a service manager, `&`)
            return 0
        lines += 1
        if not console.run_line(line):
            return 0


def headless(dev: DevEnvironment) -> int:
    """No console: keep the sandbox serving until interrupted (SIGINT or SIGTERM)."""
    print("(no console input: the sandbox keeps running until interrupted)", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    return 0
