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
