"""Structured logs: one JSON object per line, with the incident id, and no secrets."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

# user:password@ in anything that looks like a connection string, even a mistyped one.
_CREDENTIALS = re.compile(r"([A-Za-z0-9_.%+-]+):([^@\s/:'\"]+)@")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secret values and URL passwords from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    return _CREDENTIALS.sub(r"\1:[redacted]@", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "at": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        incident = getattr(record, "incident", None)
        if incident is not None:
            data["incident"] = f"RB-{incident}"
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(data, default=str), self._secrets)


def configure(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "httpx", "httpcore", "slack_bolt", "slack_sdk", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
