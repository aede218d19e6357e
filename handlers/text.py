"""Escaping user-typed words before they go into a message (Slack mrkdwn rules: & < >)."""

from __future__ import annotations


def escape(text: str) -> str:
    """``<!channel>``, ``<@U…>`` and ``<https://…|links>`` become inert text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
