"""Logs with structlog: one JSON object per line in production, readable lines in `rollbot dev`.

Every line about an incident, a job or a Slack request carries its context: the incident
(``RB-n``), its ``kind`` and ``env``, the ``user`` acting and the ``job`` or ``request`` kind,
bound with ``structlog.contextvars`` where they become known (the edge binds the request's user
and kind; the core binds an incident once it has read it, ``handlers.services.bind_incident``;
the worker runs every job in a fresh context). The code logs through the standard ``logging``
module, as the libraries do, and structlog renders every record, theirs included. Secrets
(every ``SecretStr`` setting, and credentials in URLs) are redacted from the rendered line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

# user:password@ in anything that looks like a connection string, even a mistyped one.
_CREDENTIALS = re.compile(r"([A-Za-z0-9_.%+-]+):([^@\s/:'\"]+)@")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secret values and URL passwords from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    return _CREDENTIALS.sub(r"\1:[redacted]@", text)


def _incident_ref(_logger: Any, _name: str, event: EventDict) -> EventDict:
    """``extra={"incident": 4}`` (an id) reads ``RB-4``, as the contextvars have it."""
    incident = event.get("incident")
    if isinstance(incident, int) and not isinstance(incident, bool):
        event["incident"] = f"RB-{incident}"
    return event


_FIRST = ("at", "level", "logger", "msg", "incident", "kind", "env", "user", "job", "request")


def _ordered(_logger: Any, _name: str, event: EventDict) -> EventDict:
    """The same keys first on every line, for a person reading them raw."""
    return {**{key: event.pop(key) for key in _FIRST if key in event}, **event}


def _error(_logger: Any, _name: str, event: EventDict) -> EventDict:
    if "exception" in event:
        event["error"] = event.pop("exception")
    return event


# Before rendering, for every record (ours and the libraries'): the bound context, the level, the
# logger, a record's ``extra`` fields, the time.
_PRE_CHAIN: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", key="at"),
    _incident_ref,
]


class _Formatter(structlog.stdlib.ProcessorFormatter):
    def __init__(self, last: list[Processor], secrets: Iterable[str]) -> None:
        super().__init__(foreign_pre_chain=_PRE_CHAIN, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last])
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


class JsonFormatter(_Formatter):
    """Production: ``{"msg": …, "level": "info", "logger": …, "at": …, "incident": "RB-4", …}``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__([structlog.processors.format_exc_info, _error, structlog.processors.EventRenamer("msg"),
                          _ordered, structlog.processors.JSONRenderer()], secrets)


class ConsoleFormatter(_Formatter):
    """`rollbot dev`: ``<time> [info] <message>  incident=RB-4 kind=code env=staging …``."""

    def __init__(self, secrets: Iterable[str] = (), *, colors: bool = False) -> None:
        # Plain tracebacks: rich's would print every frame's local variables, secrets included.
        super().__init__([structlog.dev.ConsoleRenderer(colors=colors, timestamp_key="at",
                                                        exception_formatter=structlog.dev.plain_traceback)], secrets)


def configure(level: str = "INFO", secrets: Iterable[str] = (), *, readable: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter(secrets, colors=sys.stderr.isatty()) if readable else JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "httpx", "httpcore", "slack_bolt", "slack_sdk", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
