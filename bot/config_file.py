"""Loads ``rollbot.toml`` with tomllib and validates it; errors name the key and say what is wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from handlers.config import Policy


class ConfigError(Exception):
    """The policy file is missing or invalid. ``str(error)`` is ready to show to an operator."""


def load_policy(path: Path) -> Policy:
    if not path.exists():
        raise ConfigError(
            f"{path}: policy file not found. Copy rollbot.example.toml to {path} (or set ROLLBOT_CONFIG)."
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_policy(data, str(path))


def parse_policy(data: dict[str, object], source: str = "rollbot.toml") -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
            message = problem["msg"].removeprefix("Value error, ")
            if problem["type"] == "extra_forbidden":
                message = "unknown key (check the spelling against rollbot.example.toml)"
            elif problem["type"] == "missing":
                message = "required key is missing"
            lines.append(f"  {key}: {message}")
        raise ConfigError(f"{source}: {len(lines)} problem(s):\n" + "\n".join(lines)) from None
