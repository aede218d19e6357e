"""Block Kit as Slack's own client reads and fills it in: the interactive elements of a message or
a view, the option a click chooses, what a ``rich_text_input`` holds for typed text, and the
length limits a submission respects. The signed client (``sandbox.slack_client``) builds its
payloads from these; tests use them to find what the bot really rendered."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

Record = dict[str, Any]

SINGLE_SELECTS = frozenset({"static_select", "radio_buttons", "overflow", "external_select"})
MULTI_SELECTS = frozenset({"checkboxes", "multi_static_select", "multi_external_select"})


def rich_text(text: str) -> Record:
    """A ``rich_text_input``'s state as Slack sends it for ``text`` typed in it: paragraphs as
    sections, a line starting with "- " as a bullet list item."""
    elements: list[Record] = []
    for line in text.split("\n"):
        if line.startswith("- "):
            item = {"type": "rich_text_section", "elements": [{"type": "text", "text": line[2:]}]}
            if elements and elements[-1]["type"] == "rich_text_list":
                elements[-1]["elements"].append(item)
            else:
                elements.append({"type": "rich_text_list", "style": "bullet", "indent": 0, "elements": [item]})
        else:
            elements.append({"type": "rich_text_section", "elements": [{"type": "text", "text": line}]})
    return {"type": "rich_text_input", "rich_text_value": {"type": "rich_text", "elements": elements}}


def find_action(message: Mapping[str, Any], action_id: str) -> Record:
    """Find the interactive element with ``action_id`` in a message's blocks.

    Looks into ``actions`` blocks, section accessories and input elements.

    Returns:
        A copy of the element with its block's ``block_id`` added.

    Raises:
        AssertionError: listing the action_ids present, if there is no such element.
    """
    found = [element for element in elements(message) if element.get("action_id") == action_id]
    if not found:
        available = [str(e.get("action_id")) for e in elements(message)]
        raise AssertionError(
            f"no element with action_id {action_id!r} in message {message.get('ts')!r}; available: {available}"
        )
    return found[0]


def elements(message: Mapping[str, Any]) -> Iterator[Record]:
    """Every element carrying an action_id, each a copy with ``block_id`` set."""
    for block in message.get("blocks") or []:
        if not isinstance(block, dict):
            continue
        candidates = list(block.get("elements") or [])
        candidates += [block[key] for key in ("accessory", "element") if isinstance(block.get(key), dict)]
        for element in candidates:
            if isinstance(element, dict) and "action_id" in element:
                yield {**copy.deepcopy(element), "block_id": block.get("block_id")}


def option(element: Mapping[str, Any], value: str | None) -> Record | None:
    """The option of a select/overflow/radio element whose value is ``value``."""
    for option in element.get("options") or []:
        if isinstance(option, dict) and option.get("value") == value:
            return copy.deepcopy(option)
    return None


def check_lengths(view: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Slack's client does not submit a text input holding more than its ``max_length`` (at most
    3,000): neither does this one."""
    for block in view.get("blocks", []):
        element = block.get("element") if isinstance(block, dict) else None
        if not isinstance(element, dict) or element.get("type") != "plain_text_input":
            continue
        given = (values.get(block.get("block_id")) or {}).get(element.get("action_id")) or {}
        most = min(int(element.get("max_length") or 3000), 3000)
        if len(str(given.get("value") or "")) > most:
            raise AssertionError(f"Slack does not submit more than {most} characters in {block.get('block_id')!r}")
