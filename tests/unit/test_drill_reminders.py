"""The worker's drill and review reminders: what is due, which reminder number, posted once, again
after ``remind_every`` while still due, moved by a drill; on fakes, with a fake clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.blocks.drills import drill_reminder_blocks, review_reminder_blocks
from bot.config_file import ConfigError, parse_policy
from bot.metrics import gauges
from handlers import approvals, drills
from handlers.commands import Rollback
from handlers.config import Drills
from handlers.execution import execute
from handlers.model import Incident
from handlers.monitoring import maintenance
from handlers.requests import request_rollback
from handlers.store import StandingRecord
from sandbox.slack_validation import validate_blocks, validate_text
from tests.fakes.world import BOB, CAROL, FakeWorld, fake_world, policy_data

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
URL = "https://wiki.test/rollback"


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path)


def _drills(w: FakeWorld, **drills: Any) -> None:
    w.svc.policy = parse_policy({**policy_data(), "drills": {"channel": "C03PLATFORM", **drills}})


def _posted(w: FakeWorld) -> list[tuple[str, int]]:
    return [(r.series, r.seq) for (r,) in w.notifier.sent.get("standing", [])]


def _drill(w: FakeWorld) -> Incident:
    incident = request_rollback(w.svc, BOB, Rollback("switch", "staging", "quarterly drill", {"name": "checkout"}),
                                drill=True)
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    done = execute(w.svc, incident.id)
    assert done is not None and done.rolled_back_at == w.clock.now()
    return done


# -- which reminder is due --------------------------------------------------------------------


def test_the_reminder_number_follows_the_ledger_and_the_cadence() -> None:
    due = T0 - timedelta(days=3)
    assert drills.occurrence(due, None, T0, WEEK) == 1  # due, never reminded: the first, at once
    assert drills.occurrence(None, None, T0, WEEK) == 1  # due since always (no drill on record)
    sent = StandingRecord(1, "posted", T0)
    assert drills.occurrence(due, sent, T0 + WEEK - timedelta(seconds=1), WEEK) is None  # not again within a week
    assert drills.occurrence(due, sent, T0 + WEEK, WEEK) == 2  # still due a week later: the next one
    assert drills.occurrence(None, sent, T0 + WEEK, WEEK) == 2
    assert drills.occurrence(T0 + timedelta(days=1), sent, T0 + timedelta(days=1), WEEK) == 2  # due anew: at once
    in_doubt = StandingRecord(4, "posting", T0)
    assert drills.occurrence(due, in_doubt, T0 + 10 * WEEK, WEEK) == 4  # settle that one first, never a fifth


def test_drill_reminders_are_posted_once_again_weekly_and_moved_by_a_drill(w: FakeWorld) -> None:
    _drills(w)
    assert drills.remind(w.svc) == ["drill.1"]  # no drill on record: due now
    assert drills.remind(w.svc) == [] and drills.remind(w.svc) == []  # the next passes post nothing
    w.clock.advance(WEEK - timedelta(minutes=1))
    assert drills.remind(w.svc) == []
    w.clock.advance(timedelta(minutes=1))
    assert drills.remind(w.svc) == ["drill.2"]  # still due a week later
    done = _drill(w)
    w.clock.advance(timedelta(days=30))
    assert drills.remind(w.svc) == []  # a drill recently: nothing due
    w.clock.advance(timedelta(days=61))  # 91 days after the drill
    assert drills.remind(w.svc) == ["drill.3"]  # due again: at once, not a week after the last reminder
    assert _posted(w) == [("drill", 1), ("drill", 2), ("drill", 3)]
    [(first,), _, (third,)] = w.notifier.sent["standing"]
    assert first.due_since is None and first.last_drill is None and first.environments == ("staging",)
    assert third.due_since == done.rolled_back_at + timedelta(days=91) and third.last_drill.id == done.id
    assert [e.detail["seq"] for e in w.store.audit_log(None) if e.action == "remind.drill"] == [1, 2, 3]


def test_the_review_reminder_follows_procedure_reviewed(w: FakeWorld) -> None:
    _drills(w, procedure_reviewed="2026-09-01", review_every="90d", procedure_url=URL)
    _drill(w)  # a drill today: only the review is due (2026-09-01 + 90 days = 2026-11-30)
    assert drills.remind(w.svc) == []
    w.clock.advance(timedelta(days=2))
    assert drills.remind(w.svc) == ["review.1"]
    [(review,)] = w.notifier.sent["standing"]
    assert (review.reviewed, review.due_since, review.procedure_url) == (date(2026, 9, 1), date(2026, 11, 30), URL)
    assert drills.remind(w.svc) == []
    w.clock.advance(WEEK)
    assert drills.remind(w.svc) == ["review.2"]
    _drills(w, procedure_reviewed="2026-12-07", procedure_url=URL)  # reviewed: the next one is in 90 days
    assert drills.remind(w.svc) == []
    w.clock.advance(timedelta(days=90))  # 2027-03-07: the review is due again, and 91 days after the drill, a drill
    assert drills.remind(w.svc) == ["drill.1", "review.3"]


def test_nothing_is_posted_without_a_drills_channel(w: FakeWorld) -> None:
    assert w.svc.policy.drills.channel is None
    assert drills.remind(w.svc) == [] and "standing" not in w.notifier.sent
    assert "drills:remind" not in [key for key, _ in maintenance(w.svc)]
    _drills(w)
    assert "drills:remind" in [key for key, _ in maintenance(w.svc)]


def test_a_reminder_slack_did_not_take_is_the_same_reminder_next_time(w: FakeWorld) -> None:
    _drills(w, remind_every="1h")
    w.notifier.refuse.add("standing")
    assert drills.remind(w.svc) == [] and w.store.last_standing("drill") is None  # refused: forgotten
    w.notifier.refuse.clear()
    w.notifier.uncertain.add("standing")
    assert drills.remind(w.svc) == []
    assert w.store.last_standing("drill") == StandingRecord(1, "posting", w.clock.now())  # in doubt: kept
    w.notifier.uncertain.clear()
    w.clock.advance(timedelta(hours=20))
    assert drills.remind(w.svc) == ["drill.1"]  # the one in doubt is settled, never a second number
    assert _posted(w) == [("drill", 1)]
    w.clock.advance(timedelta(seconds=15))  # settled late: the next is an hour after it was posted, not now
    assert drills.remind(w.svc) == []
    w.clock.advance(timedelta(hours=1))
    assert drills.remind(w.svc) == ["drill.2"]


def test_a_reminder_in_doubt_for_a_day_is_let_go_and_reminded_once(w: FakeWorld) -> None:
    _drills(w)
    w.notifier.uncertain.add("standing")
    assert drills.remind(w.svc) == []
    w.notifier.uncertain.clear()
    w.clock.advance(2 * WEEK)  # the worker was down, or Slack could not be read back
    assert drills.remind(w.svc) == ["drill.1"]  # let go, then one reminder: no burst of the missed ones
    w.clock.advance(timedelta(seconds=15))
    assert drills.remind(w.svc) == []
    assert [e.outcome for e in w.store.entries if e.action == "remind.drill"] == ["given_up", "ok"]


# -- what they say ----------------------------------------------------------------------------


def _reminders(w: FakeWorld) -> tuple[drills.DrillReminder, drills.ReviewReminder]:
    _drills(w, procedure_reviewed="2026-06-01", procedure_url=URL + "?a=1&b=2")
    drills.remind(w.svc)
    [(drill,), (review,)] = w.notifier.sent["standing"]
    return drill, review


def test_the_drill_reminder_says_what_is_due_where_how_and_the_runbooks_procedure(w: FakeWorld) -> None:
    drill, _ = _reminders(w)
    text, blocks = drill_reminder_blocks(drill)
    assert validate_blocks(blocks) == [] and validate_text(text) == []
    body = str(blocks)
    assert "none is on record yet" in body and "*Last drill:* never" in body
    assert "`/rollback drill code staging`" in body and "*staging*" in body and "*prod*" not in body
    for step in ("Create test deployment", "Apply test migration", "Test rollback procedure", "Document any issues",
                 "Update procedure if needed"):
        assert step in body
    assert "&lt;type&gt; &lt;env&gt;" in body and "<type>" not in body  # nothing Slack would read as a link
    done = _drill(w)
    w.clock.advance(timedelta(days=92))
    drills.remind(w.svc)
    again = [r for (r,) in w.notifier.sent["standing"] if isinstance(r, drills.DrillReminder)][-1]
    assert again.seq == 2
    _, blocks = drill_reminder_blocks(again)
    assert validate_blocks(blocks) == []
    assert f"*Last drill:* {done.ref}, switch on staging, {done.rolled_back_at:%Y-%m-%d}" in str(blocks)
    assert f"since <!date^{int(again.due_since.timestamp())}" in str(blocks)


def test_the_drill_reminder_with_no_non_production_environment_says_how_to_add_one() -> None:
    reminder = drills.DrillReminder(1, None, timedelta(days=91), None, (), WEEK)
    _, blocks = drill_reminder_blocks(reminder)
    assert validate_blocks(blocks) == [] and "every environment here is production" in str(blocks)


def test_the_drill_reminder_stays_inside_slacks_limits_with_many_environments_and_escapes_their_names() -> None:
    names = tuple(f"<!channel>-{n}-" + "x" * 50 for n in range(300))
    _, blocks = drill_reminder_blocks(drills.DrillReminder(1, None, timedelta(days=91), None, names, WEEK))
    assert validate_blocks(blocks) == []
    body = str(blocks)
    assert "<!channel>" not in body and "&lt;!channel&gt;-299-" in body  # every one is named, none as a mention


def test_the_review_reminder_links_the_procedure_and_says_how_to_record_a_review(w: FakeWorld) -> None:
    _, review = _reminders(w)
    text, blocks = review_reminder_blocks(review)
    assert validate_blocks(blocks) == [] and validate_text(text) == []
    body = str(blocks)
    assert "<https://wiki.test/rollback?a=1&amp;b=2|Read the procedure>" in body  # escaped, still a link
    assert "last reviewed on 2026-06-01" in body and "due since 2026-08-30" in body
    assert f"`procedure_reviewed = {w.clock.now():%Y-%m-%d}`" in body and "`[drills]`" in body
    unlinked = review_reminder_blocks(drills.ReviewReminder(1, date(2026, 6, 1), date(2026, 8, 30),
                                                            timedelta(days=90), None, date(2026, 11, 28), WEEK))[1]
    assert "No `procedure_url` is set" in str(unlinked)


@pytest.mark.parametrize(("drills", "key", "words"), [
    ({"remind_every": "5m"}, "drills.remind_every", "must be at least '1h'"),
    ({"every": "0s"}, "drills.every", "must be at least '1d'"),
    ({"review_every": "12h"}, "drills.review_every", "must be at least '1d'"),
    ({"procedure_url": "wiki/rollback"}, "drills.procedure_url", "must be an http(s) URL"),
    ({"procedure_url": "https://wiki.test/a|<!channel>"}, "drills.procedure_url", "without spaces, '<', '>' or '|'"),
    ({"channel": "#platform"}, "drills.channel", "is not a Slack channel ID"),
    ({"channel": "C"}, "drills.channel", "is not a Slack channel ID"),
])
def test_the_drills_keys_are_checked_and_the_error_names_the_key(drills: dict[str, str], key: str,
                                                                  words: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_policy({**policy_data(), "drills": drills})
    assert key in str(error.value) and words in str(error.value)
    assert Drills().remind_every == WEEK


# -- the metrics --------------------------------------------------------------------------------


def test_the_metrics_count_drills_apart_and_say_when_one_is_overdue(w: FakeWorld) -> None:
    real = w.request(kind="switch", name="checkout")
    approvals.approve(w.svc, CAROL, real.id, real.plan_hash)
    execute(w.svc, real.id)
    (w.switches / "checkout").write_text("on")
    w.clock.advance(timedelta(hours=1))
    drill = _drill(w)
    policy = Drills(every="91d")  # type: ignore[arg-type]

    def scrape() -> dict[str, float]:
        return gauges(w.store.status_counts(), w.store.last_rolled_back(), w.store.last_rolled_back(drill=True),
                      policy, w.clock.now())

    now = scrape()
    assert now['rollbot_incidents{status="monitoring",drill="false"}'] == 1
    assert now['rollbot_incidents{status="monitoring",drill="true"}'] == 1
    assert now["rollbot_open_incidents"] == 2
    rolled_back = w.store.get(real.id).rolled_back_at
    assert rolled_back is not None and rolled_back < drill.rolled_back_at
    assert now['rollbot_last_rollback_timestamp_seconds{drill="false"}'] == rolled_back.timestamp()
    assert now['rollbot_last_rollback_timestamp_seconds{drill="true"}'] == drill.rolled_back_at.timestamp()
    assert now["rollbot_drill_overdue"] == 0 and now["rollbot_procedure_review_overdue"] == 0
    w.clock.advance(timedelta(days=91))
    assert scrape()["rollbot_drill_overdue"] == 1
