"""Drills: the whole flow on a non-production environment, marked as a drill everywhere, refused on
production, and kept out of "last rollback"."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.blocks.incident import root_blocks, root_text
from bot.blocks.plans import GENERIC
from bot.blocks.status import status_blocks
from bot.blocks.thread import notify_blocks
from handlers import approvals
from handlers.commands import Rollback
from handlers.drills import schedule
from handlers.execution import execute
from handlers.model import Status
from handlers.requests import request_rollback
from handlers.services import Refused
from handlers.summary import build_summary, render_markdown
from tests.fakes.world import ALICE, BOB, CAROL, FakeWorld, fake_world


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path)


def test_a_drill_on_production_is_refused_and_touches_nothing(w: FakeWorld) -> None:
    with pytest.raises(Refused, match="\\*prod\\* is a production environment, and drills never touch one"):
        request_rollback(w.svc, ALICE, Rollback("switch", "prod", "quarterly drill", {"name": "checkout"}), drill=True)
    assert w.store.open_incidents() == []
    assert [e.outcome for e in w.store.audit_log(None) if e.action == "drill.switch"] == ["refused"]


def test_a_drill_runs_the_whole_flow_marked_as_a_drill_and_is_not_the_last_rollback(w: FakeWorld) -> None:
    real = w.request(ALICE, "switch", name="checkout")
    assert approvals.approve(w.svc, CAROL, real.id, real.plan_hash).decided
    execute(w.svc, real.id)
    w.store.transition(real.id, [Status.MONITORING], Status.RESOLVED)
    (w.switches / "checkout").write_text("on")
    drill = request_rollback(w.svc, BOB, Rollback("switch", "staging", "quarterly drill", {"name": "checkout"}), drill=True)
    assert drill.drill and w.svc.policy.environments["staging"].production is None
    approvals.approve(w.svc, CAROL, drill.id, drill.plan_hash)
    done = execute(w.svc, drill.id)
    assert done is not None and done.status is Status.MONITORING and done.drill
    assert w.store.last_rolled_back().id == real.id and w.store.last_rolled_back(drill=True).id == drill.id
    kind = w.svc.kinds["switch"]
    assert "DRILL" in root_blocks(done, kind, w.svc.policy.environments["staging"].policy, w.clock.now(),
                                  GENERIC)[0]["text"]["text"]
    assert root_text(done, kind).startswith(f"{done.ref}: drill: ")
    summary = build_summary(done, kind, w.store.steps(done.id), w.store.audit_log(done.id))
    assert summary.drill and summary.title.endswith("(drill)") and summary.timeline[0].what == "Drill requested"
    assert "(drill)" in render_markdown(summary).splitlines()[0]
    [(noted, mentions)] = [n for n in w.notifier.sent["notify"] if n[0].id == drill.id]
    _, blocks = notify_blocks(noted, mentions, ["lead"])
    assert "a *drill* of a switch rollback on *staging*" in str(blocks)  # the team hears it is a drill
    status = str(status_blocks([], w.store.last_rolled_back(), w.clock.now(),
                               schedule(w.svc.policy.drills, w.store.last_rolled_back(drill=True))))
    assert f"*Last rollback:* {real.ref}" in status and f"*Last drill:* {drill.ref}" in status
    assert f"*Next drill:* <!date^{int((done.rolled_back_at + timedelta(days=91)).timestamp())}" in status
    assert "*Next review:* unknown (set `procedure_reviewed` under `[drills]`)" in status


def test_next_drill_and_review_follow_the_policy() -> None:
    from datetime import UTC, date, datetime

    from handlers.config import Drills

    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    none_yet = schedule(Drills(procedure_reviewed=date(2026, 6, 1), procedure_url="https://wiki.test/rollback"), None)
    assert none_yet.next_drill is None and none_yet.drill_overdue(now)
    assert none_yet.next_review == date(2026, 8, 30) and none_yet.review_overdue(now.date())
    lines = str(status_blocks([], None, now, none_yet))
    assert "*Next drill:* due now (no drill on record" in lines
    assert "*Next review:* 2026-08-30 :warning: overdue · <https://wiki.test/rollback|the procedure>" in lines
