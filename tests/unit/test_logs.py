"""Logs are JSON lines that carry the incident and never a secret."""

from __future__ import annotations

import io
import json
import logging

from bot.cli import secrets_of
from bot.logs import JsonFormatter
from bot.settings import Settings


def test_secrets_from_the_environment_are_redacted() -> None:
    settings = Settings(_env_file=None, slack_bot_token="xoxb-very-secret-token", vercel_token="vercel-token-abcdef",
                        database_url="postgresql://rollbot:pg-password-42@db:5432/rollbot",
                        slack_signing_secret="signing-secret-xyz")
    secrets = secrets_of(settings)
    assert "pg-password-42" in secrets
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(secrets))
    logger = logging.getLogger("rollbot.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling with %s and %s", "xoxb-very-secret-token", "vercel-token-abcdef",
                       extra={"incident": 4})
        try:
            raise RuntimeError("connect to postgresql://rollbot:pg-password-42@db failed; signing-secret-xyz")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["incident"] == "RB-4" and lines[0]["level"] == "warning"
    text = stream.getvalue()
    for secret in ("xoxb-very-secret-token", "vercel-token-abcdef", "pg-password-42", "signing-secret-xyz"):
        assert secret not in text
    assert text.count("[redacted]") >= 4


def test_settings_never_print_secrets() -> None:
    settings = Settings(_env_file=None, slack_bot_token="xoxb-very-secret-token")
    assert "xoxb-very-secret-token" not in repr(settings) and "xoxb-very-secret-token" not in str(settings)


def test_redact_masks_url_passwords_even_in_mistyped_urls() -> None:
    from bot.logs import redact

    assert redact("postgres//rollbot:S3cretPW@db/rollbot") == "postgres//rollbot:[redacted]@db/rollbot"
    assert "hunter22" not in redact("redis://default:hunter22@cache:6379/0")
    assert redact("plain text with no secrets: fine") == "plain text with no secrets: fine"


def _render(formatter: logging.Formatter, *args: object, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("rollbot.test.render")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info(*args, extra=extra)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_context_bound_for_a_request_is_on_its_lines_and_gone_after() -> None:
    from contextvars import Context

    from structlog.contextvars import bind_contextvars

    from bot.logs import JsonFormatter

    def inside() -> str:
        bind_contextvars(incident="RB-7", kind="code", env="prod", user="U01CAROL")
        return _render(JsonFormatter(), "approval recorded")

    line = json.loads(Context().run(inside))
    assert list(line)[:8] == ["at", "level", "logger", "msg", "incident", "kind", "env", "user"]
    assert (line["incident"], line["kind"], line["env"], line["user"]) == ("RB-7", "code", "prod", "U01CAROL")
    assert "incident" not in json.loads(_render(JsonFormatter(), "outside any request"))


def test_dev_lines_are_readable_and_redacted_too() -> None:
    from bot.logs import ConsoleFormatter

    text = _render(ConsoleFormatter(["xoxb-very-secret-token"]), "posted with %s", "xoxb-very-secret-token",
                   incident=4)
    assert not text.startswith("{") and "posted with [redacted]" in text and "incident=RB-4" in text
    assert "[info" in text and "xoxb-very-secret-token" not in text
