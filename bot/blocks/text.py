"""Slack text helpers: escaping user input, mentions, dates. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

from handlers.text import escape  # noqa: F401 - the one escaping rule, re-exported for the blocks


def quote(text: str, limit: int = 1500) -> str:
    """Escaped user text, cut to ``limit`` characters so a block never overflows."""
    clean = escape(text.strip())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def user(user_id: str) -> str:
    return f"<@{user_id}>"


def mention(group_or_user: str) -> str:
    if group_or_user.startswith("S"):
        return f"<!subteam^{group_or_user}>"
    if group_or_user.startswith(("U", "W")):
        return f"<@{group_or_user}>"
    return escape(group_or_user)


def when(at: datetime) -> str:
    """A time every reader sees in their own time zone (with a UTC fallback)."""
    epoch = int(at.timestamp())
    fallback = at.astimezone(UTC).strftime("%H:%M UTC")
    return f"<!date^{epoch}^{{time}}|{fallback}>"


def ago(at: datetime, now: datetime) -> str:
    """Coarse age, the two most significant units: "45s ago", "12m ago", "2h 5m ago", "3d 4h ago"."""
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours}h {minutes}m ago" if minutes else f"{hours}h ago"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days}d {hours}h ago" if hours else f"{days}d ago"


def plain(text: str, limit: int = 150) -> str:
    """Plain-text fields (headers, buttons) have hard limits."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
