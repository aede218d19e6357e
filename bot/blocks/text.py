"""Slack text helpers: escaping user input, mentions, dates. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from handlers.text import escape  # noqa: F401 - the one escaping rule, re-exported for the blocks


def quote(text: str, limit: int = 1500) -> str:
    """Escaped user text, cut to ``limit`` characters so a block never overflows (marked with
    "…", and never inside an escape such as ``&amp;``)."""
    clean = escape(text.strip())
    if len(clean) <= limit:
        return clean
    cut = clean[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


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


SECTION_TEXT = 3000  # Slack: a section's text


def chunks(lines: list[str], limit: int = SECTION_TEXT) -> list[str]:
    """Lines packed into texts of at most ``limit`` characters, never cutting a line (one longer
    than ``limit`` on its own is split at spaces). Nothing is dropped."""
    out: list[str] = []
    current = ""
    for line in lines:
        while len(line) > limit:  # split an overlong line at a space in its second half, else hard
            cut = line.rfind(" ", limit // 2, limit)
            cut = cut if cut > 0 else limit
            pieces, line = line[:cut], line[cut:].lstrip()
            if current:
                out.append(current)
                current = ""
            out.append(pieces)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            out.append(current)
            current = line
        else:
            current = candidate
    if current or not out:
        out.append(current)
    return out


def sections(lines: list[str], *, most: int = 10, more: str = "") -> list[dict[str, Any]]:
    """``lines`` as section blocks inside Slack's limits. Beyond ``most`` sections, the lines
    that do not fit are counted and ``more`` says where to see all of them: nothing disappears
    without a word."""
    texts = chunks(lines)
    if len(texts) > most:
        kept: list[str] = []
        for line in lines:
            trial = [*kept, line]
            if len(chunks([*trial, f"_…and {len(lines) - len(trial)} more: {more}_"])) > most:
                break
            kept = trial
        texts = chunks([*kept, f"_…and {len(lines) - len(kept)} more: {more}_"])
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text or " "}} for text in texts]
