"""Property-based tests (hypothesis): whatever Slack or a hostile client sends, the grammar, the
edge's payload checks and every Block Kit builder answer calmly and validly.

A few hundred examples each in the normal run; for the long run of 10,000 examples each:
``HYPOTHESIS_PROFILE=long python3 tasks.py test tests/unit/test_properties.py``.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot.blocks.code_plan import CodePlanRenderer
from bot.blocks.home import home_view
from bot.blocks.incident import root_blocks
from bot.blocks.plans import GENERIC
from bot.blocks.summary import summary_blocks, timeline_parts
from bot.blocks.thread import closed_blocks, failure_blocks, notify_blocks, plan_changed_blocks, reminder_blocks
from bot.config_file import parse_policy
from bot.edge import shape
from bot.listeners.actions import _incident_ref, _where
from handlers.code import CodeKind, CodePlan, Deployment
from handlers.commands import Command, CommandError, parse
from handlers.config import EnvironmentPolicy
from handlers.kind import KindRegistry
from handlers.model import Approval, HealthResult, Incident, Resolution, Status
from handlers.runbook import initial_checklist
from handlers.store import AuditEntry
from handlers.summary import build_summary
from sandbox.slack_limits import message_errors
from sandbox.slack_validation import validate_view
from tests.fakes.world import policy_data
from tests.kinds.switch import SwitchKind

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
EXAMPLES = settings.default.max_examples

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
CODE = CodeKind(provider=None)  # type: ignore[arg-type]
KINDS = KindRegistry([CODE, SwitchKind(Path("/nonexistent"))])

POLICY = parse_policy(policy_data())
WORDS = st.sampled_from(["code", "sw", "db", "env", "flag", "prod", "staging", "production", "restore", "list",
                         "help", "status", "history", "resolve", "cancel", "drill", "decide", "RB-1", "dpl_x",
                         "API_KEY", "<!channel>", "<@U1>", "&amp;", "\u00a0", "\x00", "`", "*"])
TEXT = st.one_of(st.text(max_size=300), st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=12).map(" ".join))


def _mentions_escaped(text: str) -> bool:
    return "<!" not in text and "<@" not in text


@pytest.mark.reliability("attack", "Random command text, parsed directly (hypothesis)", trials=EXAMPLES)
@given(TEXT)
def test_any_command_text_parses_or_gets_a_helpful_escaped_error(text: str) -> None:
    try:
        command = parse(text, POLICY, KINDS)
    except CommandError as error:
        message = str(error)
        assert message and _mentions_escaped(message)
        return
    assert isinstance(command, Command.__args__)  # type: ignore[attr-defined]


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                       lambda inner: st.one_of(st.lists(inner, max_size=4),
                                               st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)


@given(st.binary(max_size=400), st.sampled_from(["application/json", "application/x-www-form-urlencoded", "",
                                                  "text/plain", "application/json; charset=utf-8"]))
@pytest.mark.reliability("attack", "Random bodies, judged by the edge directly (hypothesis)", trials=EXAMPLES)
def test_any_body_is_judged_without_raising(body: bytes, content_type: str) -> None:
    refusal = shape(content_type, body)
    assert isinstance(refusal, dict) or (refusal.status == 400 and refusal.reason)


@pytest.mark.reliability("attack", "Random interactive payloads, read directly (hypothesis)", trials=EXAMPLES)
@given(st.dictionaries(st.sampled_from(["type", "user", "actions", "channel", "container", "message"]), JSONISH))
def test_any_interactive_payload_is_read_without_raising(payload: dict) -> None:
    user, channel, thread = _where(payload)
    assert isinstance(user, str) and isinstance(channel, str)
    ref = _incident_ref(payload)
    assert ref is None or (isinstance(ref[0], int) and ref[0] >= 0)


SLACKY = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=4000)
IDS = st.from_regex(r"U[A-Z0-9]{2,12}", fullmatch=True)


def _deployment(uid: str, message: str, author: str) -> Deployment:
    return Deployment(uid=uid, url="x.vercel.app", created_at=NOW - timedelta(hours=1), commit_sha="a" * 40,
                      commit_message=message, author=author)


@st.composite
def incidents(draw: st.DrawFn) -> Incident:
    status = draw(st.sampled_from(list(Status)))
    reason, note, failure, cause = draw(SLACKY), draw(SLACKY), draw(SLACKY), draw(SLACKY)
    plan = CodePlan(env=draw(st.text(min_size=1, max_size=80)), project=draw(st.text(min_size=1, max_size=200)),
                    from_deployment=_deployment(draw(st.text(min_size=1, max_size=200)), draw(SLACKY),
                                                draw(st.text(max_size=200))),
                    to_deployment=_deployment(draw(st.text(min_size=1, max_size=200)), draw(SLACKY),
                                              draw(st.text(max_size=200))))
    approvers = draw(st.lists(IDS, max_size=12, unique=True))
    return Incident(
        id=draw(st.integers(1, 10**9)), kind="code", env=plan.env, status=status, requester=draw(IDS), reason=reason,
        plan=plan, created_at=NOW - timedelta(minutes=20), approvals_needed=draw(st.integers(1, 10)),
        expires_at=NOW + timedelta(minutes=10), checklist=initial_checklist(),
        approvals=tuple(Approval(a, plan.hash, NOW) for a in approvers), channel="C1", root_ts="1.1",
        decided_by=draw(IDS), decision_note=note, rolled_back_at=NOW - timedelta(minutes=5),
        failure=failure or None, resolution=Resolution(draw(IDS), cause, draw(SLACKY), NOW),
    )


def _valid(blocks: list[dict]) -> None:
    assert 0 < len(blocks) <= 50
    for block in Block.parse_all(blocks):
        assert block is not None
        block.validate_json()
    assert message_errors(blocks) == []  # Slack's limits, as the emulator enforces them
    text = json.dumps(blocks)
    assert "<!channel>" not in text and "<!here>" not in text


@given(incidents())
def test_the_root_message_is_valid_for_any_incident(incident: Incident) -> None:
    for renderer in (CodePlanRenderer(), GENERIC):
        _valid(root_blocks(incident, CODE, EnvironmentPolicy(), NOW, renderer))


@given(incidents(), st.lists(st.builds(HealthResult, st.text(max_size=500), st.booleans(),
                                       st.none() | st.integers(100, 599), st.integers(0, 60_000),
                                       st.none() | st.text(max_size=200)), max_size=25))
def test_thread_messages_are_valid_for_any_incident(incident: Incident, health: list[HealthResult]) -> None:
    for _, blocks in (notify_blocks(incident, ["S01ONCALL"], ["lead"]), reminder_blocks(incident, 3, 3, health),
                      failure_blocks(incident, incident.failure or "x", CODE.next_step),
                      plan_changed_blocks(incident, incident.plan),
                      closed_blocks(replace(incident, status=Status.DENIED))):
        _valid(blocks)


@given(incidents())
def test_the_summary_is_valid_for_any_incident(incident: Incident) -> None:
    _, blocks = summary_blocks(build_summary(incident, CODE, [], []))
    _valid(blocks)


@given(incidents(), st.integers(0, 3000), st.lists(IDS, min_size=1, max_size=5))
def test_any_timeline_is_whole_in_the_thread_parts_or_in_the_summary(incident: Incident, entries: int,
                                                                      actors: list[str]) -> None:
    audit = [AuditEntry(NOW - timedelta(minutes=15) + timedelta(seconds=n), incident.id, actors[n % len(actors)],
                        "remind", "ok", {}) for n in range(entries)]
    summary = build_summary(incident, CODE, [], audit)
    _, blocks = summary_blocks(summary)
    _valid(blocks)
    parts = timeline_parts(summary)
    for text, part in parts:
        _valid(part)
        assert len(text) <= 4000
    if parts:
        lines = [line for _, part in parts for b in part[1:] for line in b["text"]["text"].splitlines()]
        assert len(lines) == len(summary.timeline)
    else:
        assert all(t.what in json.dumps(blocks, ensure_ascii=False) for t in summary.timeline)


@given(st.lists(incidents(), max_size=4), st.integers(1, 300), st.integers(0, 5000))
def test_the_home_tab_is_valid_for_any_number_of_incidents(some: list[Incident], times: int, older: int) -> None:
    listed = [replace(i, id=n) for n, i in enumerate(some * times, start=1)]
    view = home_view(listed, listed[0] if listed else None, listed[:10], NOW, total=len(listed[:10]) + older)
    assert validate_view(view) == []


FORMISH = st.text(alphabet=st.sampled_from(list("%+&=\\x0123456789abcdefABCDEFgz é✓\u0000")), max_size=60)


@given(FORMISH)
@pytest.mark.reliability("attack", "Percent-decoding: the edge's fast decoder against urllib's, on any text (hypothesis)",
                         trials=EXAMPLES)
def test_the_fast_percent_decoder_reads_every_text_as_urllib_does(text: str) -> None:
    from urllib.parse import parse_qs, quote_plus, unquote_plus

    from bot.edge import read_form, unquote_plus_fast

    assert unquote_plus_fast(text) == unquote_plus(text)
    assert unquote_plus_fast(quote_plus(text)) == text
    try:
        expected: dict[str, list[str]] | None = parse_qs(text, keep_blank_values=True, strict_parsing=True,
                                                          max_num_fields=100)
    except ValueError:
        expected = None
    try:
        got: dict[str, list[str]] | None = read_form(text)
    except ValueError:
        got = None
    assert got == expected
