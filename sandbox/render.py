"""Block Kit -> terminal text for the dev console, with every clickable element numbered."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass
class Clickable:
    number: int
    channel: str
    ts: str
    action_id: str
    kind: str  # button | checkbox | option (of a select in a modal)
    label: str
    value: str | None = None


EMOJI = {
    ":hourglass_flowing_sand:": "⏳", ":gear:": "⚙️", ":eyes:": "👀", ":white_check_mark:": "✅",
    ":no_entry:": "⛔", ":alarm_clock:": "⏰", ":heavy_multiplication_x:": "✖️", ":x:": "❌", ":mega:": "📣",
    ":mag:": "🔍", ":rewind:": "⏪", ":warning:": "⚠️", ":stopwatch:": "⏱️", ":large_green_circle:": "🟢",
    ":red_circle:": "🔴", ":memo:": "📝", ":heavy_check_mark:": "✔️", ":fast_forward:": "⏩",
}
_EMOJI = re.compile(r":[a-z_]+:")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")


class Renderer:
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names  # user/group id -> display name
        self.clickables: list[Clickable] = []
        self._numbers: dict[tuple[str, str, str | None], int] = {}  # stable numbers per element

    def mrkdwn(self, text: str) -> str:
        text = _DATE.sub(r"\1", text)
        text = _LINK.sub(r"\2 (\1)", text)
        text = _USER.sub(lambda m: "@" + self.names.get(m.group(1), m.group(1)), text)
        text = _GROUP.sub(lambda m: "@" + self.names.get(m.group(1), m.group(1)), text)
        text = re.sub(r"<#([A-Z0-9]+)(?:\|[^>]*)?>", lambda m: "#" + self.names.get(m.group(1), m.group(1)), text)
        text = _EMOJI.sub(lambda m: EMOJI.get(m.group(0), m.group(0)), text)
        text = _BOLD.sub(r"\1", text)  # *bold* reads fine without its markers in a terminal
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def message(self, message: dict[str, Any], channel: str, indent: str = "") -> str:
        lines: list[str] = []
        blocks = message.get("blocks") or []
        if not blocks:
            lines.append(self.mrkdwn(message.get("text") or ""))
        for block in blocks:
            lines += self._block(block, channel, message.get("ts", ""))
        return "\n".join(indent + line for text in lines for line in text.splitlines())

    def _block(self, block: dict[str, Any], channel: str, ts: str) -> list[str]:
        kind = block.get("type")
        if kind == "header":
            return [f"━━ {block['text']['text']} ━━"]
        if kind == "section":
            out = [self.mrkdwn(block["text"]["text"])] if block.get("text") else []
            for field in block.get("fields") or []:
                out.append("  " + self.mrkdwn(field["text"]).replace("\n", "\n    "))
            accessory = block.get("accessory")
            if accessory and accessory.get("type") == "static_select":
                chosen = (accessory.get("initial_option") or {}).get("value")
                for option in accessory["options"]:
                    number = self._add(channel, ts, accessory["action_id"], "option", option["text"]["text"],
                                       option["value"])
                    mark = "◉" if option["value"] == chosen else "○"
                    out.append(f"  [{number}] {mark} {option['text']['text']}")
            if accessory and accessory.get("type") == "checkboxes":
                chosen = {o["value"] for o in accessory.get("initial_options") or []}
                for option in accessory["options"]:
                    number = self._add(channel, ts, accessory["action_id"], "checkbox", option["text"]["text"],
                                       option["value"])
                    mark = "☑" if option["value"] in chosen else "☐"
                    out.append(f"  [{number}] {mark} {self.mrkdwn(option['text']['text'])}")
            return out
        if kind == "context":
            return ["  · " + " · ".join(self.mrkdwn(e.get("text", "")) for e in block.get("elements", []))]
        if kind == "actions":
            buttons = []
            for element in block.get("elements", []):
                if element.get("type") == "button":
                    label = element["text"]["text"]
                    number = self._add(channel, ts, element["action_id"], "button", label, element.get("value"))
                    buttons.append(f"[{number}] {label}")
            return ["  " + "   ".join(buttons)] if buttons else []
        if kind == "divider":
            return ["  ───"]
        return []

    def _add(self, channel: str, ts: str, action_id: str, kind: str, label: str, value: str | None) -> int:
        key = (ts, action_id, value if kind in ("checkbox", "option") else None)
        number = self._numbers.setdefault(key, len(self._numbers) + 1)
        self.clickables = [c for c in self.clickables if c.number != number]
        self.clickables.append(Clickable(number, channel, ts, action_id, kind, label, value))
        return number
