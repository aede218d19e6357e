"""Block Kit and view validation for the Slack emulator.

Validation leans on slack-sdk's model classes (``Block.parse_all``,
``View``) and adds the payload limits Slack itself enforces.  Every check
returns a list of human readable error strings; an empty list means the
payload is acceptable.

Beyond what the models check on their own, the validator round-trips every
parsed object through ``to_dict()`` (which validates nested elements too) and
compares the result with the input: any property or list item the models
silently dropped is reported, because it means slack-sdk did not recognise
it (an unknown element type, a misspelled property, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from sandbox.slack_limits import MESSAGE_BLOCKS, MESSAGE_TEXT, VIEW_BLOCKS, message_errors, view_errors

MAX_MESSAGE_BLOCKS: Final = MESSAGE_BLOCKS
"""Slack's limit on blocks in one message."""

MAX_VIEW_BLOCKS: Final = VIEW_BLOCKS
"""Slack's limit on blocks in one modal or Home tab view."""

MAX_TEXT_CHARS: Final = MESSAGE_TEXT
"""Slack's limit on the top-level ``text`` of a message."""

_PLAIN_TEXT_ONLY: Final[dict[str, tuple[str, ...]]] = {
    "header": ("text",),
    "button": ("text",),
    "input": ("label", "hint"),
}
"""Element/block types whose listed text fields must be ``plain_text``."""


def validate_text(text: object) -> list[str]:
    """Check a message's top-level ``text`` value."""
    if text is None:
        return []
    if not isinstance(text, str):
        return [f"text must be a string, got {type(text).__name__}"]
    if len(text) > MAX_TEXT_CHARS:
        return [f"text is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}"]
    return []


def validate_blocks(blocks: object, *, limit: int = MAX_MESSAGE_BLOCKS, where: str = "blocks") -> list[str]:
    """Validate a ``blocks`` array the way Slack would before accepting it.

    Args:
        blocks: The decoded ``blocks`` value (expected: a list of dicts).
        limit: Maximum number of blocks allowed (50 for messages, 100 for views).
        where: Prefix used in error messages (a JSON-pointer-ish path).

    Returns:
        Human readable problems; empty when the blocks are valid.
    """
    if not isinstance(blocks, list):
        return [f"{where} must be an array, got {type(blocks).__name__}"]
    # Slack's own size limits first, worded as Slack words them (with a JSON pointer), then the
    # structure as slack-sdk's models see it.
    errors = message_errors(blocks, most=limit, pointer="/" + where.replace(".", "/"))
    for index, raw in enumerate(blocks):
        errors.extend(_validate_one_block(raw, f"{where}[{index}]"))
    return errors


def validate_view(view: object) -> list[str]:
    """Validate a modal/Home tab ``view`` payload with slack-sdk's ``View`` model."""
    if not isinstance(view, Mapping):
        return [f"view must be an object, got {type(view).__name__}"]
    errors = view_errors(view)
    blocks = view.get("blocks")
    if blocks is None:
        errors.append("view.blocks is required")
    else:
        errors.extend(e for e in validate_blocks(blocks, limit=MAX_VIEW_BLOCKS, where="view.blocks")
                      if e not in errors)
    for field in ("title", "submit", "close"):
        value = view.get(field)
        if value is not None and (not isinstance(value, Mapping) or value.get("type") != "plain_text"):
            errors.append(f"view.{field} must be a plain_text object")
    if view.get("type") == "modal" and view.get("title") is None:
        errors.append("view.title is required for modals")
    if errors:
        return errors
    try:
        model = View(**dict(view))
        model.validate_json()
    except SlackObjectFormationError as exc:
        errors.append(f"view: {exc}")
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        errors.append(f"view could not be parsed: {exc}")
    return errors


def _validate_one_block(raw: object, where: str) -> list[str]:
    """Parse, validate and round-trip a single block."""
    if not isinstance(raw, Mapping):
        return [f"{where} must be an object, got {type(raw).__name__}"]
    block_type = raw.get("type")
    try:
        parsed = Block.parse(dict(raw))
        if parsed is None or type(parsed) is Block:
            return [f"{where}: unknown or missing block type {block_type!r}"]
        parsed.validate_json()
        rendered = parsed.to_dict()
    except SlackObjectFormationError as exc:
        return [f"{where} ({block_type}): {exc}"]
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        return [f"{where} ({block_type}) could not be parsed: {exc}"]
    errors: list[str] = []
    _compare(raw, rendered, where, errors)
    _check_plain_text(raw, where, errors)
    return errors


def _compare(given: object, rendered: object, where: str, errors: list[str]) -> None:
    """Report structure present in ``given`` but lost by the slack-sdk round trip."""
    if isinstance(given, Mapping):
        if not isinstance(rendered, Mapping):
            kind = given.get("type", "object")
            errors.append(f"{where}: {kind!r} is not a recognised Block Kit element")
            return
        for key, value in given.items():
            if value is None:
                continue
            if key not in rendered:
                if isinstance(value, (list, str)) and len(value) == 0:
                    errors.append(f"{where}.{key}: must not be empty")
                else:
                    errors.append(f"{where}.{key}: property is not supported here")
                continue
            _compare(value, rendered[key], f"{where}.{key}", errors)
    elif isinstance(given, list):
        if not isinstance(rendered, list) or len(rendered) != len(given):
            errors.append(f"{where}: some items are not recognised Block Kit elements")
            return
        for index, (item, out) in enumerate(zip(given, rendered, strict=True)):
            _compare(item, out, f"{where}[{index}]", errors)


def _check_plain_text(node: object, where: str, errors: list[str]) -> None:
    """Enforce ``plain_text`` where Slack refuses ``mrkdwn`` (headers, buttons, labels)."""
    if isinstance(node, Mapping):
        fields = _PLAIN_TEXT_ONLY.get(str(node.get("type")), ())
        for field in fields:
            value = node.get(field)
            if isinstance(value, Mapping) and value.get("type") != "plain_text":
                errors.append(f"{where}.{field}: must be a plain_text object")
        for key, value in node.items():
            _check_plain_text(value, f"{where}.{key}", errors)
    elif isinstance(node, Sequence) and not isinstance(node, str):
        for index, item in enumerate(node):
            _check_plain_text(item, f"{where}[{index}]", errors)
