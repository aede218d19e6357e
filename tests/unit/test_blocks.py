"""Every Block Kit payload the bot builds is valid per slack-sdk's models, in every state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.blocks.code_plan import CodePlanRenderer
from bot.blocks.decide import decide_modal
from bot.blocks.incident import root_blocks
from bot.blocks.modals import deny_modal, resolve_modal
from bot.blocks.plans import GENERIC
from bot.blocks.status import history_blocks, status_blocks
from bot.blocks.summary import summary_blocks, timeline_parts
from bot.blocks.text import ago, escape
from bot.blocks.thread import (
    closed_blocks,
    failure_blocks,
    notify_blocks,
    plan_changed_blocks,
    progress_blocks,
    reminder_blocks,
    verification_blocks,
)
from handlers.code import CodeKind, CodePlan, Deployment
from handlers.config import EnvironmentPolicy
from handlers.kind import Verification
from handlers.model import Approval, HealthResult, Incident, Resolution, Status, StepRun
from handlers.runbook import initial_checklist
from handlers.summary import build_summary, render_markdown

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
LONG = "<!channel> " + "x" * 5000
CODE = CodeKind(provider=None)  # type: ignore[arg-type] # rendering never calls the provider


def _incident(status: Status, reason: str = "checkout 500") -> Incident:
    good = Deployment(uid="dpl_good", url="shop-good.vercel.app", created_at=NOW - timedelta(days=1),
                      commit_sha="9dea3e8aa", commit_message="fix: tax\nbody", author="Jonas")
    bad = Deployment(uid="dpl_bad", url="shop-bad.vercel.app", created_at=NOW - timedelta(hours=2),
                     commit_sha="cfe8d5d11", commit_message="perf: cache", author="Priya")
    plan = CodePlan(env="prod", project="prj", from_deployment=bad, to_deployment=good)
    return Incident(
        id=7, kind="code", env="prod", status=status, requester="U01ALICE", reason=reason, plan=plan,
        created_at=NOW - timedelta(minutes=20), approvals_needed=1, expires_at=NOW + timedelta(minutes=10),
        checklist=initial_checklist(), approvals=(Approval("U01CAROL", plan.hash, NOW - timedelta(minutes=19)),),
        channel="C1", root_ts="1.1", decided_by="U01CAROL", decided_at=NOW - timedelta(minutes=19),
        decision_note=LONG, rolled_back_at=NOW - timedelta(minutes=17), verified_at=NOW - timedelta(minutes=17),
        failure=LONG if status is Status.FAILED else None,
        resolution=Resolution("U01CAROL", LONG, LONG, NOW) if status is Status.RESOLVED else None,
    )


def _valid(blocks: list[dict]) -> None:
    assert 0 < len(blocks) <= 50
    for block in Block.parse_all(blocks):
        assert block is not None
        block.validate_json()


@pytest.mark.parametrize("status", list(Status))
def test_root_message_is_valid_in_every_status(status: Status) -> None:
    for renderer in (CodePlanRenderer(), GENERIC):
        blocks = root_blocks(_incident(status, reason=LONG), CODE, EnvironmentPolicy(), NOW, renderer)
        _valid(blocks)
    actions = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert ("approve" in actions) == (status is Status.PENDING)
    assert ("resolve" in actions) == (status in (Status.MONITORING, Status.FAILED))


def test_thread_messages_are_valid() -> None:
    incident = _incident(Status.MONITORING)
    health = [HealthResult("https://x.test/health", True, 200, 12), HealthResult("https://y.test/" + "a" * 300, False, None, 5000, "ConnectTimeout")]
    steps = [StepRun("vercel.rollback", "ok", NOW, NOW, LONG), StepRun("verify", "running", NOW)]
    for _, blocks in (
        notify_blocks(incident, ["S01ONCALL", "U01CAROL"], ["lead"]),
        progress_blocks(incident, CODE, steps),
        verification_blocks(incident, Verification(True, "production serves " + LONG), health, False,
                            [timedelta(minutes=5)]),
        reminder_blocks(incident, 3, 3, health),
        failure_blocks(incident, LONG, "Runbook: promote by hand."),
        plan_changed_blocks(incident, incident.plan),
        closed_blocks(replace(incident, status=Status.DENIED)),
        closed_blocks(replace(incident, status=Status.EXPIRED)),
        closed_blocks(replace(incident, status=Status.CANCELLED)),
    ):
        _valid(blocks)
    _valid(status_blocks([incident], incident, NOW))
    _valid(history_blocks([incident] * 40))


def test_summary_is_valid_and_complete() -> None:
    incident = _incident(Status.RESOLVED, reason=LONG)
    summary = build_summary(incident, CODE, [StepRun("vercel.rollback", "ok", NOW, NOW)], [])
    _, blocks = summary_blocks(summary)
    _valid(blocks)
    assert summary.within_target is True and summary.time_to_rollback == "3m"
    assert (summary.change_from, summary.change_to) == ("dpl_bad", "dpl_good")
    assert render_markdown(summary).startswith("# RB-7: Code rollback on prod (resolved)")


@pytest.mark.parametrize("view", [deny_modal(_incident(Status.PENDING)), resolve_modal(_incident(Status.MONITORING)),
                                  decide_modal(), decide_modal("Security"), decide_modal("Feature broken")])
def test_modals_are_valid(view: dict) -> None:
    View(**view).validate_json()


def test_home_view_is_valid() -> None:
    from bot.blocks.home import home_view

    incident = _incident(Status.MONITORING)
    View(**home_view([incident], incident, [incident] * 5, NOW)).validate_json()
    View(**home_view([], None, [], NOW)).validate_json()


@pytest.mark.parametrize(("open_count", "total"), [(0, 0), (3, 3), (10, 2000), (2000, 2000)])
def test_the_home_tab_stays_inside_slacks_limits_however_many_incidents_and_counts_what_it_leaves_out(
        open_count: int, total: int) -> None:
    """However many incidents are open or recorded, the Home tab keeps to a view's 100 blocks and
    Slack's other limits (checked by the emulator's own rules); every open rollback is either
    listed or counted with where to see it, and so are the older ones it does not list."""
    from bot.blocks.home import HOME_RECENT, home_view
    from sandbox.slack_validation import validate_view

    incidents = [replace(_incident(Status.MONITORING, reason="r" * 400), id=n) for n in range(1, open_count + 1)]
    recent = [replace(_incident(Status.RESOLVED), id=total - n) for n in range(min(HOME_RECENT, total))]
    view = home_view(incidents, None, recent, NOW, total=total)
    assert validate_view(view) == [] and len(view["blocks"]) <= 100
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section" and "text" in b]
    dividers = [n for n, b in enumerate(view["blocks"]) if b["type"] == "divider"]
    opened = "\n".join(b["text"]["text"] for b in view["blocks"][dividers[0]:dividers[1]] if b["type"] == "section")
    listed = {i.ref for i in incidents if f"*{i.ref}* " in opened}
    counted = int(opened.split("…and ")[1].split(" ")[0]) if "…and " in opened else 0
    assert len(listed) + counted == open_count and listed == {f"RB-{n}" for n in range(1, len(listed) + 1)}
    if counted:
        assert "`/rollback history 50`" in opened and "`rollbot report RB-N`" in opened
    history = next(t for t in texts if t.startswith("*Recent rollbacks*"))
    if total > HOME_RECENT:
        assert f"(the newest {HOME_RECENT} of {total})" in history
        assert f"…and {total - HOME_RECENT} older: `/rollback history 50`" in "".join(texts)
    else:
        assert "older" not in history


def test_escape_neutralises_mentions_and_links() -> None:
    assert escape("<!channel> <@U1> <https://x|y> a&b") == "&lt;!channel&gt; &lt;@U1&gt; &lt;https://x|y&gt; a&amp;b"


def test_ages_read_like_a_human_wrote_them() -> None:
    assert ago(NOW - timedelta(seconds=42), NOW) == "42s ago"
    assert ago(NOW - timedelta(minutes=12, seconds=5), NOW) == "12m ago"
    assert ago(NOW - timedelta(hours=2, seconds=6), NOW) == "2h ago"
    assert ago(NOW - timedelta(days=1, hours=2, minutes=3), NOW) == "1d 2h ago"


def test_reason_is_escaped_in_the_root_message() -> None:
    blocks = root_blocks(replace(_incident(Status.PENDING), reason="<!channel> <@U01BOB>"), CODE, EnvironmentPolicy(),
                         NOW, CodePlanRenderer())
    text = str(blocks)
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text and "<@U01BOB>" not in text


def _big_plans() -> list[tuple[object, object]]:
    """Each built-in kind's plan, as large as a real one gets, with its kind."""
    from handlers.db import DatabaseKind
    from handlers.db_plan import BackupRef, DatabasePlan, Fact, MigrationRef
    from handlers.env import EnvKind
    from handlers.env_plan import EnvChange, EnvPlan

    long = "<@U01EVIL> " + "n" * 300
    revert = DatabasePlan(
        env="prod", action="revert", database="PROD_DATABASE_URL", server_version=long, head="1",
        migration=MigrationRef(version="20261128100000", name=long, applied_at=NOW, reverse_source=long,
                               reverse_sha256="ab" * 32),
        facts=tuple(Fact(check="absent", target=f"public.{long}{n}") for n in range(40)), estimate_seconds=95.0)
    restore = DatabasePlan(
        env="prod", action="restore", database="PROD_DATABASE_URL", server_version="17.2", head="1",
        backup=BackupRef(id=3, taken_at=NOW, size=10**9, sha256="cd" * 32, reason=long, versions=("1",)),
        removed=tuple(f"2026112{n:07d}" for n in range(60)), added=("1",))
    env = EnvPlan(env="prod", project="prj", snapshot_id=4, snapshot_at=NOW, keys=("A",), deployment="dpl_x",
                  project_name=long, request="r1", since=tuple(f"{long}{n} added" for n in range(40)),
                  changes=tuple(EnvChange(key=f"KEY_{n}_{'X' * 80}", action="change", env_id=f"e{n}", type="plain",
                                          target=("production",), from_fp="12345678", to_fp="87654321")
                                for n in range(60)))
    db_kind = DatabaseKind(None, None, None, lambda: NOW, lambda i: False)  # type: ignore[arg-type]
    env_kind = EnvKind(None, None, lambda: NOW)  # type: ignore[arg-type]
    return [(revert, db_kind), (restore, db_kind), (env, env_kind)]


@pytest.mark.parametrize("index", range(3))
def test_every_kinds_plan_renders_within_slacks_limits_and_escapes_what_it_echoes(index: int) -> None:
    from bot.bootstrap import RENDERERS

    plan, kind = _big_plans()[index]
    incident = replace(_incident(Status.PENDING), kind=plan.kind, plan=plan)  # type: ignore[attr-defined]
    blocks = root_blocks(incident, kind, EnvironmentPolicy(), NOW, RENDERERS[plan.kind])  # type: ignore[arg-type,attr-defined]
    _valid(blocks)
    text = str(blocks)
    assert "<@U01EVIL>" not in text and "more (`rollbot report` lists every one)" in text


def test_failing_health_checks_are_listed_before_passing_ones() -> None:
    from bot.blocks.thread import health_lines

    health = [HealthResult("https://a.test/ok", True, 200, 5), HealthResult("https://b.test/down", False, 500, 7),
              HealthResult("https://c.test/ok", True, 200, 5), HealthResult("https://d.test/slow", False, None, 5000,
                                                                            "ReadTimeout")]
    lines = health_lines(health).splitlines()
    assert [line.split()[1] for line in lines] == ["https://b.test/down", "https://d.test/slow", "https://a.test/ok",
                                                   "https://c.test/ok"]


def test_a_long_incident_stays_inside_slacks_limits_and_nothing_disappears() -> None:
    """20 health checks, 15 reminders, 10 approvers, a 3,500-character root cause, 40 timeline
    entries: every payload is valid, and everything is either shown or counted and pointed to."""
    from handlers.store import AuditEntry

    health = [HealthResult(f"https://status-{n}.shop.test/api/" + "h" * 150 + f"/{n}", n % 3 != 0, 200 if n % 3 else 500,
                           12) for n in range(20)]
    approvers = [f"U0APPR{n:03d}" for n in range(10)]
    base = _incident(Status.RESOLVED, reason="why " + "w" * 3400)
    incident = replace(base, approvals_needed=10,
                       approvals=tuple(Approval(a, base.plan_hash, NOW - timedelta(minutes=18)) for a in approvers),
                       resolution=Resolution("U01CAROL", "cause " + "r" * 3490, "lesson " + "l" * 3490, NOW))
    root = root_blocks(replace(incident, status=Status.MONITORING), CODE, EnvironmentPolicy(), NOW, CodePlanRenderer())
    _valid(root)
    assert all(f"<@{a}>" in str(root) for a in approvers)  # the tenth approver too
    root_text = "".join(b["text"]["text"] for b in root if b.get("type") == "section" and "text" in b)
    assert "why" + "w" * 3400 in "".join(root_text.split())  # a long reason is split, not cut
    _, verified = verification_blocks(incident, Verification(True, "production serves dpl_good"), health, False,
                                      [timedelta(minutes=m) for m in range(1, 16)])
    _valid(verified)
    shown = str(verified)
    assert all(h.url in shown for h in health)  # all 20 URLs, failing first
    assert shown.index("status-0.") < shown.index("status-1.")
    for index in (1, 15):
        _, reminder = reminder_blocks(incident, index, 15, health)
        _valid(reminder)
        assert all(h.url in str(reminder) for h in health)
    audit = [AuditEntry(NOW - timedelta(minutes=40 - n), None, "U01CAROL", "approve", "ok", {}) for n in range(40)]
    summary = build_summary(incident, CODE, [StepRun("vercel.rollback", "ok", NOW, NOW)], audit)
    _, blocks = summary_blocks(summary)
    _valid(blocks)
    text = "".join(b["text"]["text"] for b in blocks if b.get("type") == "section" and "text" in b)
    squeezed = "".join(text.split())  # split across sections at whitespace: every character is there
    assert "cause" + "r" * 3490 in squeezed and "lesson" + "l" * 3490 in squeezed and "why" + "w" * 3400 in squeezed
    # the timeline says what it left out, and where: the thread has all of it, in order
    assert "more entries: the full timeline is in the incident's thread and in `rollbot report RB-7`" in text
    parts = timeline_parts(summary)
    for _, part in parts:
        _valid(part)
    posted = "\n".join(b["text"]["text"] for _, part in parts for b in part[1:])
    assert posted.splitlines() == [f"`+{t.offset}` {t.what} — " + (f"<@{t.actor}>" if t.actor.startswith("U") else t.actor)
                                   for t in summary.timeline]


def test_a_short_timeline_is_whole_in_the_summary_and_not_repeated_in_the_thread() -> None:
    summary = build_summary(_incident(Status.RESOLVED), CODE, [], [])
    assert summary.timeline and timeline_parts(summary) == []
    assert "full timeline" not in str(summary_blocks(summary)[1])


def test_a_very_long_timeline_takes_as_many_thread_messages_as_it_needs() -> None:
    from handlers.store import AuditEntry

    audit = [AuditEntry(NOW + timedelta(seconds=n), None, "rollbot", "remind", "ok", {}) for n in range(2000)]
    summary = build_summary(_incident(Status.RESOLVED), CODE, [], audit)
    parts = timeline_parts(summary)
    assert len(parts) > 1 and all(f"part {n} of {len(parts)}" in part[0]["text"]["text"]
                                  for n, (_, part) in enumerate(parts, start=1))
    for text, part in parts:
        _valid(part)
        assert len(text) < 4000
    assert sum(b["text"]["text"].count("Monitoring reminder") for _, part in parts for b in part[1:]) == 2000


def test_a_summary_field_too_long_for_slack_says_how_many_lines_it_left_out() -> None:
    from handlers.summary import HealthRound

    incident = _incident(Status.RESOLVED)
    summary = build_summary(incident, CODE, [], []).model_copy(update={"health": [
        HealthRound(phase=f"monitor.{n} " + "p" * 60, at=NOW, results=[]) for n in range(60)]})
    _, blocks = summary_blocks(summary)
    _valid(blocks)
    field = next(f["text"] for b in blocks for f in b.get("fields", []) if f["text"].startswith("*Verification"))
    assert len(field) <= 2000 and field.count("monitor.") + int(field.split("…and ")[1].split(" ")[0]) == 60
    assert "more: `rollbot report RB-7`" in field
