"""Slack's documented size limits on Block Kit payloads, checked the way Slack answers them.

Slack refuses a payload over a limit with ``invalid_blocks`` and one error per violation, each
naming the place with a JSON pointer: ``must be less than 3001 characters
[json-pointer:/blocks/0/text/text]``, ``no more than 50 items allowed [json-pointer:/blocks]``.
slack-sdk's models check many of these limits but not all (a section field's 2,000 characters,
the options of checkboxes, an option's description, any text object's 3,000), so the emulator
checks the whole table here, on every payload, before the models look at the structure.

Sources: Slack's Block Kit reference (blocks, block elements, composition objects), the
``chat.postMessage`` reference (``text``: 40,000 characters, ``msg_too_long``) and the views
reference (title, submit and close: 24 characters; ``private_metadata``: 3,000).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

MESSAGE_BLOCKS: Final = 50
VIEW_BLOCKS: Final = 100
MESSAGE_TEXT: Final = 40_000
DISPLAYED_TEXT: Final = 4_000
"""Slack shows at most this much of a message's top-level ``text``: a fallback should stay under it."""

TEXT_OBJECT: Final = 3000  # any text object, wherever it is

# (node type, property) -> most characters of that string, or of that text object's text.
CHARACTERS: Final[dict[tuple[str, str], int]] = {
    ("*", "block_id"): 255,
    ("*", "action_id"): 255,
    ("section", "text"): 3000,
    ("header", "text"): 150,
    ("input", "label"): 2000,
    ("input", "hint"): 2000,
    ("image", "alt_text"): 2000,
    ("image", "title"): 2000,
    ("image", "image_url"): 3000,
    ("button", "text"): 75,
    ("button", "value"): 2000,
    ("button", "url"): 3000,
    ("button", "accessibility_label"): 75,
    ("option", "text"): 75,
    ("option", "value"): 150,
    ("option", "description"): 75,
    ("option", "url"): 3000,
    ("confirm", "title"): 100,
    ("confirm", "text"): 300,
    ("confirm", "confirm"): 30,
    ("confirm", "deny"): 30,
    ("*", "placeholder"): 150,
    ("plain_text_input", "initial_value"): 3000,
    ("view", "title"): 24,
    ("view", "submit"): 24,
    ("view", "close"): 24,
    ("view", "private_metadata"): 3000,
    ("view", "callback_id"): 255,
    ("view", "external_id"): 255,
}

# (node type, property) -> most items of that list.
ITEMS: Final[dict[tuple[str, str], int]] = {
    ("section", "fields"): 10,
    ("context", "elements"): 10,
    ("actions", "elements"): 25,
    ("checkboxes", "options"): 10,
    ("radio_buttons", "options"): 10,
    ("static_select", "options"): 100,
    ("static_select", "option_groups"): 100,
    ("multi_static_select", "options"): 100,
    ("overflow", "options"): 5,
}
FIELD_TEXT: Final = 2000  # each of a section's fields


def message_errors(blocks: object, *, most: int = MESSAGE_BLOCKS, pointer: str = "/blocks") -> list[str]:
    """Every limit ``blocks`` breaks, as Slack words it (empty when none)."""
    errors: list[str] = []
    if isinstance(blocks, list):
        if len(blocks) > most:
            errors.append(_too_many(most, pointer))
        for index, block in enumerate(blocks):
            _walk(block, "block", f"{pointer}/{index}", errors)
    return _first_per_place(errors)


def view_errors(view: object) -> list[str]:
    """Every limit a modal or Home tab view breaks: its own properties and its 100 blocks."""
    if not isinstance(view, Mapping):
        return []
    errors: list[str] = []
    for (kind, key), most in CHARACTERS.items():
        if kind == "view" and key in view:
            _length(view[key], most, f"/view/{key}", errors)
    return errors + message_errors(view.get("blocks"), most=VIEW_BLOCKS, pointer="/view/blocks")


def _walk(node: object, role: str, pointer: str, errors: list[str]) -> None:
    """Check one object (a block, an element, a composition object) and everything inside it.
    ``role`` names objects that have no ``type`` of their own (options, confirm dialogs)."""
    if not isinstance(node, Mapping):
        return
    kind = str(node.get("type") or role)
    if kind in ("plain_text", "mrkdwn"):
        _length(node.get("text"), TEXT_OBJECT, f"{pointer}/text", errors)
        return
    for key, value in node.items():
        where = f"{pointer}/{key}"
        most = CHARACTERS.get((kind, key)) or CHARACTERS.get(("*", key))
        if most is not None:
            _length(value, most, where, errors)
        items = ITEMS.get((kind, key))
        if items is not None and isinstance(value, list) and len(value) > items:
            errors.append(_too_many(items, where))
        if kind == "section" and key == "fields" and isinstance(value, list):
            for index, field in enumerate(value):
                if isinstance(field, Mapping):
                    _length(field.get("text"), FIELD_TEXT, f"{where}/{index}/text", errors)
        child_role = "option" if key in ("options", "initial_options", "initial_option") else key
        if isinstance(value, list):
            for index, item in enumerate(value):
                _walk(item, child_role, f"{where}/{index}", errors)
        elif isinstance(value, Mapping):
            _walk(value, child_role, where, errors)


def _first_per_place(errors: list[str]) -> list[str]:
    """One error per JSON pointer: the most specific limit (checked first) is the one reported."""
    seen: set[str] = set()
    kept = []
    for error in errors:
        place = error[error.rindex("[json-pointer:"):]
        if place not in seen:
            seen.add(place)
            kept.append(error)
    return kept


def _length(value: object, most: int, pointer: str, errors: list[str]) -> None:
    text = value.get("text") if isinstance(value, Mapping) else value
    if isinstance(value, Mapping):
        pointer = f"{pointer}/text"
    if isinstance(text, str) and len(text) > most:
        errors.append(f"must be less than {most + 1} characters [json-pointer:{pointer}]")


def _too_many(most: int, pointer: str) -> str:
    return f"no more than {most} items allowed [json-pointer:{pointer}]"
