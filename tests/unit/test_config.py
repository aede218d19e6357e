from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config_file import ConfigError, load_policy, parse_policy
from handlers.durations import format_duration, parse_duration

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_policy_file_is_valid() -> None:
    policy = load_policy(ROOT / "rollbot.example.toml")
    prod = policy.environments["prod"]
    assert prod.monitor == (timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=15))
    assert prod.policy.database.approvals == 2
    assert policy.resolve_environment("production") == "prod"


def _base(**prod: object) -> dict:
    return {"roles": {"lead": {"users": ["U1"]}, "engineer": {"users": ["U2"]}, "dba": {"users": ["U3"]}},
            "environments": {"prod": {"channel": "C1", **prod}}}


@pytest.mark.parametrize("data, fragment", [
    (_base(monitor=["5x"]), "environments.prod.monitor.0: '5x' is not a duration"),
    (_base(approval_timeout=30), "environments.prod.approval_timeout: durations are strings"),
    (_base(chanel="C1"), "environments.prod.chanel: unknown key"),
    (_base(channel="#incidents"), "is not a Slack channel ID"),
    (_base(health_checks=["example.com"]), "must be an http(s) URL"),
    (_base(policy={"code": {"approvers": ["boss"]}}), "role 'boss' is not defined"),
    (_base(policy={"code": {"approvers": ["lead"], "approvals": 0}}), "environments.prod.policy.code.approvals"),
    ({"environments": {"prod": {"channel": "C1"}}}, "roles: required key is missing"),
    ({"roles": {"x": {"users": ["alice"]}}, "environments": {"p": {"channel": "C1"}}}, "is not a Slack user ID"),
])
def test_bad_config_names_the_key(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_policy(data)
    assert fragment in str(error.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="policy file not found"):
        load_policy(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[roles\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy(broken)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("250ms", 0.25)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 minutes", "-5m", "5m x"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(timedelta(seconds=252)) == "4m 12s"
    assert format_duration(timedelta(hours=2, minutes=5)) == "2h 5m"
    assert format_duration(timedelta(0)) == "0s"
