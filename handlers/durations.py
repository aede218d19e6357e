"""Duration strings of the policy file: ``"90s"``, ``"5m"``, ``"1h"``, ``"1h30m"``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``"90s"``/``"5m"``/``"1h30m"`` into a timedelta.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    raw = text.strip().lower().replace(" ", "")
    if not raw:
        raise ValueError("empty duration; write it like '90s', '5m' or '1h'")
    pos, seconds = 0, 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw):
        raise ValueError(f"{text!r} is not a duration; write it like '90s', '5m' or '1h'")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Render a timedelta for humans: ``"4m 12s"``, ``"2h 5m"``, ``"0s"``."""
    total = int(round(delta.total_seconds()))
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if seconds or not any(parts):
        parts.append(f"{seconds}s")
    return sign + " ".join(p for p in parts if p)
