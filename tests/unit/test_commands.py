from __future__ import annotations

import pytest

from bot.config_file import parse_policy
from handlers import commands
from handlers.code import CodeKind
from handlers.commands import CommandError
from handlers.kind import KindRegistry

POLICY = parse_policy({
    "roles": {"engineer": {"users": ["U1"]}, "lead": {"users": ["U2"]}, "dba": {"users": ["U3"]}},
    "environments": {
        "prod": {"aliases": ["production"], "channel": "C1"},
        "staging": {"aliases": ["stg"], "channel": "C2"},
    },
})
KINDS = KindRegistry([CodeKind(provider=None)])  # type: ignore[arg-type] # parsing never calls the provider


def parse(text: str, policy: object, kinds: KindRegistry) -> commands.Command:
    return commands.parse(text, POLICY, kinds)


@pytest.mark.parametrize("text, expected", [
    ("code prod checkout returns 500", commands.Rollback("code", "prod", "checkout returns 500")),
    ("code production", commands.Rollback("code", "prod", "")),
    ("CODE Prod  spaced   reason ", commands.Rollback("code", "prod", "spaced reason")),
    ("code prod dpl_abc123 bad build", commands.Rollback("code", "prod", "bad build", {"deployment": "dpl_abc123"})),
    ("db stg 20250130_add_orders oops", commands.Rollback("database", "staging", "oops", {"migration": "20250130_add_orders"})),
    ("database prod restore bk_1 data gone", commands.Rollback("database", "prod", "data gone", {"backup": "bk_1"})),
    ("db prod list", commands.ListMigrations("prod")),
    ("config prod API_URL FEATURE_X wrong value", commands.Rollback("env", "prod", "wrong value", {"keys": ("API_URL", "FEATURE_X")})),
    ("feature prod new-checkout broken", commands.Rollback("flag", "prod", "broken", {"flag": "new-checkout"})),
    ("", commands.Help()),
    ("help", commands.Help()),
    ("decide", commands.Decide()),
    ("status", commands.StatusQuery()),
    ("history", commands.History(10)),
    ("history 3", commands.History(3)),
    ("resolve", commands.Resolve(None)),
    ("resolve RB-4", commands.Resolve(4)),
    ("cancel rb-12", commands.Cancel(12)),
    ("drill code stg quarterly", commands.Drill("code", "staging", commands.Rollback("code", "staging", "quarterly", {}))),
    ("drill db stg", commands.Drill("database", "staging")),
])
def test_grammar(text: str, expected: commands.Command) -> None:
    assert parse(text, POLICY, KINDS) == expected


@pytest.mark.parametrize("text, fragment", [
    ("nonsense", "`nonsense` is not a /rollback command"),
    ("statsu", "Did you mean `status`?"),
    ("code", "needs an environment"),
    ("code moon", "`moon` is not a configured environment"),
    ("code moon", "`prod` (also production)"),
    ("db prod", "needs a migration"),
    ("db prod restore", "needs a backup id"),
    ("env prod lowercase", "UPPER_CASE"),
    ("flag prod", "needs the flag key"),
    ("history lots", "count from 1 to 50"),
    ("history 0", "count from 1 to 50"),
    ("cancel", "needs the incident"),
    ("cancel twelve", "not an incident reference"),
    ("drill nothing prod", "rollback type and an environment"),
    ("code prod dpl_<!here>", "not a Vercel deployment id"),
])
def test_errors_say_what_was_wrong_and_what_would_be_right(text: str, fragment: str) -> None:
    with pytest.raises(CommandError) as error:
        parse(text, POLICY, KINDS)
    assert fragment in str(error.value)


@pytest.mark.parametrize("text", ["code prod a\x00b", "code prod \x1b[31mred", "help\x7f", "code prod x\x85y"])
def test_control_characters_are_refused_with_a_reply_that_says_so(text: str) -> None:
    with pytest.raises(CommandError, match="control character \\(U\\+00"):
        parse(text, POLICY, KINDS)


def test_line_breaks_and_tabs_are_fine_and_cleaned_text_keeps_them() -> None:
    assert parse("code prod checkout\tis\ndown", POLICY, KINDS) == commands.Rollback("code", "prod", "checkout is down")
    assert commands.clean("root\x00 cause\n\tline two\x1b") == "root cause\n\tline two"
