"""What a person wrote in a ``rich_text_input`` (a modal's long fields: root cause, lessons), as
plain text with its line structure kept: lists as bullets, quotes as ``>``, code as it was typed.

Slack's plain-text inputs stop at 3,000 characters; a root cause can be longer, so the Resolve
modal asks in rich text, which has no such limit, and Rollbot keeps what was typed whole.
"""

from __future__ import annotations

from typing import Any

from handlers.commands import clean


def rich_text_to_text(value: object) -> str:
    """The text of a ``rich_text`` value (``{"type": "rich_text", "elements": [...]}``), control
    characters removed; "" for anything else."""
    if not isinstance(value, dict):
        return ""
    lines = [_block(element) for element in _list(value.get("elements"))]
    return clean("\n".join(line for line in lines if line is not None)).strip("\n")


def _list(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _block(element: dict[str, Any]) -> str | None:
    kind = element.get("type")
    if kind == "rich_text_section":
        return _inline(element)
    if kind == "rich_text_preformatted":
        return "```\n" + _inline(element) + "\n```"
    if kind == "rich_text_quote":
        return "\n".join("> " + line for line in _inline(element).split("\n"))
    if kind == "rich_text_list":
        indent = "  " * _int(element.get("indent"))
        ordered = element.get("style") == "ordered"
        start = _int(element.get("offset"))
        return "\n".join(f"{indent}{f'{start + n}.' if ordered else '•'} {_inline(item)}"
                         for n, item in enumerate(_list(element.get("elements")), start=1))
    return None


def _int(value: object) -> int:
    return value if isinstance(value, int) and 0 <= value < 100 else 0


def _inline(section: dict[str, Any]) -> str:
    """One section's elements as text: mentions and links as what they name."""
    parts = []
    for item in _list(section.get("elements")):
        kind = item.get("type")
        if kind == "text":
            parts.append(str(item.get("text") or ""))
        elif kind == "link":
            url, text = str(item.get("url") or ""), str(item.get("text") or "")
            parts.append(f"{text} ({url})" if text and text != url else url)
        elif kind == "user":
            parts.append(f"@{item.get('user_id', '')}")
        elif kind == "usergroup":
            parts.append(f"@{item.get('usergroup_id', '')}")
        elif kind == "channel":
            parts.append(f"#{item.get('channel_id', '')}")
        elif kind == "broadcast":
            parts.append(f"@{item.get('range', '')}")
        elif kind == "emoji":
            parts.append(f":{item.get('name', '')}:")
        elif kind == "date":
            parts.append(str(item.get("fallback") or item.get("timestamp") or ""))
    return "".join(parts)
