"""Follow-ups (the runbook's "Documentation Updates"), on fakes: the Resolve modal's rows and
their validation, stored with the resolution only, DM reminders at the cadence until done, and
only the owner marks one done."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.blocks.follow_ups import follow_up_blocks, follow_up_done_blocks
from bot.blocks.modals import FOLLOW_UP_ADD, resolve_modal, resolve_rows
from bot.blocks.summary import summary_blocks
from bot.config_file import ConfigError, parse_policy
from bot.listeners.views import follow_up_drafts
from handlers import approvals, follow_ups, monitoring, resolution
from handlers.execution import execute
from handlers.follow_ups import MAX_PER_CATEGORY
from handlers.model import NewFollowUp, Resolution, Status
from handlers.services import Refused
from handlers.store import FOLLOW_UP_JOB
from handlers.summary import render_markdown, with_follow_ups
from tests.fakes.world import ALICE, BOB, CAROL, DAN, FakeWorld, fake_world, policy_data

TWO = [NewFollowUp("docs", "Runbook step 3: purge the CDN <!channel>", BOB),
       NewFollowUp("tests", "E2E test of checkout with a stale cache", DAN)]


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path)


def _monitored(w: FakeWorld) -> int:
    incident = w.request(ALICE, "code")
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    assert execute(w.svc, incident.id).status is Status.MONITORING
    return incident.id


def _resolved(w: FakeWorld, items: list[NewFollowUp] = TWO) -> int:
    incident_id = _monitored(w)
    resolution.resolve(w.svc, CAROL, incident_id, "cause", "lessons", items)
    return incident_id


def _run_due(w: FakeWorld) -> list[str]:
    """Run every due job; the outcomes of the follow-up reminders."""
    outcomes = []
    for job in w.store.claim_due(w.clock.now(), "test"):
        outcome = monitoring.process(w.svc, job)
        if job.kind == FOLLOW_UP_JOB:
            outcomes.append(outcome)
    return outcomes


def _reminders(w: FakeWorld) -> list[tuple[str, int]]:
    """(owner, round) of every DM reminder sent."""
    return [(f.owner, n) for _, f, n in w.notifier.sent.get("follow_up", [])]


# -- the modal ---------------------------------------------------------------------------------

def _view(rows: dict[str, int], values: dict[str, Any]) -> dict[str, Any]:
    view = resolve_modal(_incident_stub(), rows)
    state: dict[str, Any] = {}
    for block_id, value in values.items():
        if block_id.endswith("-owner"):
            state[block_id] = {"value": {"type": "users_select", "selected_user": value}}
        else:
            state[block_id] = {"value": {"type": "plain_text_input", "value": value}}
    return {**view, "state": {"values": state}}


def _incident_stub() -> Any:
    from tests.unit.test_blocks import _incident

    return _incident(Status.MONITORING)


def test_the_modal_has_one_row_per_category_and_adds_more_up_to_the_limit() -> None:
    view = resolve_modal(_incident_stub())
    View(**view).validate_json()
    ids = [b.get("block_id") for b in view["blocks"]]
    assert {"follow_up-docs-0", "follow_up-docs-0-owner", "follow_up-tests-0", "follow_up-tests-0-owner"} <= set(ids)
    owner = next(b for b in view["blocks"] if b.get("block_id") == "follow_up-docs-0-owner")
    assert owner["element"]["type"] == "users_select" and owner["optional"] is True
    assert resolve_rows(view["private_metadata"]) == (7, {"docs": 1, "tests": 1})
    full = resolve_modal(_incident_stub(), {"docs": MAX_PER_CATEGORY, "tests": 2})
    View(**full).validate_json()
    adds = [e["value"] for b in full["blocks"] if b["type"] == "actions" for e in b["elements"]
            if e["action_id"] == FOLLOW_UP_ADD]
    assert adds == ["tests"], "no Add another once a category has its most rows"
    assert f"follow_up-docs-{MAX_PER_CATEGORY - 1}" in [b.get("block_id") for b in full["blocks"]]
    assert resolve_rows("7") == (7, {"docs": 1, "tests": 1})
    for forged in ("7:99:1", "7:0:1", "x:1:1", "7:1", None, "7:1:1:1"):
        assert resolve_rows(forged) is None


def test_rows_need_both_a_text_and_an_owner_and_empty_rows_are_no_follow_up() -> None:
    items, errors = follow_up_drafts(_view({"docs": 2, "tests": 2}, {
        "follow_up-docs-0": "Document the purge\x00 step", "follow_up-docs-0-owner": BOB,
        "follow_up-docs-1": "Nobody owns this",
        "follow_up-tests-0-owner": DAN,
        "follow_up-tests-1": "   ",
    }))
    assert items == []
    assert errors == {"follow_up-docs-1-owner": "Who owns this? Pick an owner, or clear the text.",
                      "follow_up-tests-0": "Say what must be done, or clear the owner."}


def test_valid_rows_are_cleaned_and_kept_in_order() -> None:
    items, errors = follow_up_drafts(_view({"docs": 2, "tests": 1}, {
        "follow_up-docs-0": " Document the purge\x00 step ", "follow_up-docs-0-owner": BOB,
        "follow_up-docs-1": "Link the dashboard", "follow_up-docs-1-owner": CAROL,
        "follow_up-tests-0": "Test the stale cache", "follow_up-tests-0-owner": DAN,
    }))
    assert errors == {}
    assert items == [NewFollowUp("docs", "Document the purge step", BOB), NewFollowUp("docs", "Link the dashboard", CAROL),
                     NewFollowUp("tests", "Test the stale cache", DAN)]
    assert follow_up_drafts(_view({"docs": 1, "tests": 1}, {})) == ([], {})


def test_an_owner_that_is_not_a_user_and_an_overlong_text_are_refused() -> None:
    _, errors = follow_up_drafts(_view({"docs": 1, "tests": 1}, {
        "follow_up-docs-0": "x", "follow_up-docs-0-owner": "<!channel>",
        "follow_up-tests-0": "y" * (follow_ups.TEXT_LIMIT + 1), "follow_up-tests-0-owner": DAN,
    }))
    assert "Pick the owner from the list" in errors["follow_up-docs-0-owner"]
    assert f"Keep it to {follow_ups.TEXT_LIMIT} characters" in errors["follow_up-tests-0"]


# -- stored with the resolution ----------------------------------------------------------------

def test_follow_ups_are_stored_with_the_resolution_each_with_its_first_reminder_due(w: FakeWorld) -> None:
    incident_id = _resolved(w)
    stored = w.store.follow_ups(incident_id)
    assert [(f.category, f.text, f.owner, f.done) for f in stored] == [
        ("docs", TWO[0].text, BOB, False), ("tests", TWO[1].text, DAN, False)]
    due = [j for j in w.store.pending_jobs(incident_id) if j.kind == FOLLOW_UP_JOB]
    assert sorted((j.payload["follow_up"], j.payload["round"]) for j in due) == [(stored[0].id, 1), (stored[1].id, 1)]
    assert all(j.due_at == w.clock.now() for j in due)
    summary = w.store.summary(incident_id)
    assert summary is not None and [(f.category, f.owner, f.status) for f in summary.follow_ups] == [
        ("docs", BOB, "open"), ("tests", DAN, "open")]


def test_a_resolve_that_loses_the_race_stores_no_follow_ups(w: FakeWorld) -> None:
    incident_id = _monitored(w)
    winner = w.store.resolve

    def raced(*args: Any) -> Any:  # another resolve (with no follow-ups) commits first
        incident = w.store.get(incident_id)
        assert incident is not None
        winner(incident_id, Resolution(BOB, "theirs", "", w.clock.now()), args[2], Status.RESOLVED, w.clock.now(), [])
        return winner(*args)

    w.store.resolve = raced  # type: ignore[method-assign]
    with pytest.raises(Refused, match="resolved meanwhile"):
        resolution.resolve(w.svc, CAROL, incident_id, "cause", "lessons", TWO)
    assert w.store.follow_ups(incident_id) == []
    assert [j for j in w.store.pending_jobs(incident_id) if j.kind == FOLLOW_UP_JOB] == []
    assert w.store.get(incident_id).resolution.resolved_by == BOB  # type: ignore[union-attr]


# -- reminders ---------------------------------------------------------------------------------

def test_each_owner_is_reminded_once_per_round_at_the_cadence(w: FakeWorld) -> None:
    incident_id = _resolved(w)
    assert sorted(_run_due(w)) == ["reminded", "reminded"]
    assert sorted(_reminders(w)) == [(BOB, 1), (DAN, 1)]
    assert _run_due(w) == [] and len(_reminders(w)) == 2, "a second pass sends nothing"
    w.clock.advance(timedelta(hours=23, minutes=59))
    assert _run_due(w) == []
    w.clock.advance(timedelta(minutes=1))
    assert sorted(_run_due(w)) == ["reminded", "reminded"]
    assert sorted(_reminders(w)) == [(BOB, 1), (BOB, 2), (DAN, 1), (DAN, 2)]
    assert [f.rounds for f in w.store.follow_ups(incident_id)] == [3, 3]
    sent = [e for e in w.store.audit_log(incident_id) if e.action == "follow_up.remind"]
    assert len(sent) == 4 and all(e.outcome == "ok" for e in sent)


def test_the_next_reminder_is_scheduled_once_however_often_a_round_runs(w: FakeWorld) -> None:
    incident_id = _resolved(w, TWO[:1])
    [follow_up] = w.store.follow_ups(incident_id)
    assert follow_ups.remind(w.svc, follow_up.id, 1) == "reminded"
    assert follow_ups.remind(w.svc, follow_up.id, 1) == "reminded"  # a job run again after a crash
    rounds = [j.payload["round"] for j in w.store.pending_jobs(incident_id) if j.kind == FOLLOW_UP_JOB]
    assert rounds == [1, 2], "round 2 is scheduled once (round 1's own job was never claimed here)"


def test_the_cadence_comes_from_the_policy(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    w.svc.policy = parse_policy({**policy_data(), "follow_ups": {"every": "8h"}})
    _resolved(w, TWO[:1])
    _run_due(w)
    w.clock.advance(timedelta(hours=8))
    assert _run_due(w) == ["reminded"] and _reminders(w) == [(BOB, 1), (BOB, 2)]


def test_the_cadence_must_be_at_least_an_hour() -> None:
    with pytest.raises(ConfigError, match="follow_ups.every: must be at least 1h"):
        parse_policy({**policy_data(), "follow_ups": {"every": "10m"}})
    assert parse_policy(policy_data()).follow_ups.every == timedelta(hours=24)


def test_a_dm_slack_refused_is_retried_and_one_it_may_have_taken_is_never_sent_again(w: FakeWorld) -> None:
    incident_id = _resolved(w, TWO[:1])
    w.notifier.refuse.add("follow_up")
    assert _run_due(w) == ["retry"] and _reminders(w) == []
    w.notifier.refuse.clear()
    w.notifier.uncertain.add("follow_up")
    w.clock.advance(timedelta(seconds=30))
    assert _run_due(w) == ["uncertain"]
    w.notifier.uncertain.clear()
    assert _run_due(w) == [], "round 1 is not sent again; round 2 follows at the cadence"
    w.clock.advance(timedelta(hours=24))
    assert _run_due(w) == ["reminded"] and _reminders(w) == [(BOB, 2)]
    outcomes = [e.outcome for e in w.store.audit_log(incident_id) if e.action == "follow_up.remind"]
    assert outcomes == ["failed", "uncertain", "ok"]


# -- done --------------------------------------------------------------------------------------

def test_only_the_owner_marks_it_done_once_and_the_reminders_stop(w: FakeWorld) -> None:
    incident_id = _resolved(w)
    _run_due(w)
    bob_s = w.store.follow_ups(incident_id)[0]
    for someone in (CAROL, DAN, ALICE):  # the resolver, another owner, the requester
        with pytest.raises(Refused, match=f"Only its owner, <@{BOB}>"):
            follow_ups.mark_done(w.svc, someone, bob_s.id)
    done, incident, changed = follow_ups.mark_done(w.svc, BOB, bob_s.id)
    assert changed and done.done_by == BOB and done.done_at == w.clock.now() and incident.id == incident_id
    again, _, changed_again = follow_ups.mark_done(w.svc, BOB, bob_s.id)
    assert not changed_again and again.done_at == done.done_at
    w.clock.advance(timedelta(days=3))
    for _ in range(3):
        _run_due(w)
        w.clock.advance(timedelta(days=1))
    assert [n for owner, n in _reminders(w) if owner == BOB] == [1], "no reminder after done"
    assert len([n for owner, n in _reminders(w) if owner == DAN]) > 1, "the other one is still reminded"
    audit = [(e.actor, e.outcome) for e in w.store.audit_log(incident_id) if e.action == "follow_up.done"]
    assert audit == [(CAROL, "refused"), (DAN, "refused"), (ALICE, "refused"), (BOB, "ok")]
    with pytest.raises(Refused, match="does not exist"):
        follow_ups.mark_done(w.svc, BOB, 999)


def test_a_reminder_already_due_when_it_is_marked_done_sends_nothing(w: FakeWorld) -> None:
    incident_id = _resolved(w, TWO[:1])
    [follow_up] = w.store.follow_ups(incident_id)
    jobs = w.store.claim_due(w.clock.now(), "test")  # claimed, then the owner clicks
    follow_ups.mark_done(w.svc, BOB, follow_up.id)
    assert [monitoring.process(w.svc, j) for j in jobs if j.kind == FOLLOW_UP_JOB] == ["done"]
    assert _reminders(w) == [] and w.store.follow_up(follow_up.id).rounds == 1  # type: ignore[union-attr]


# -- what people see ---------------------------------------------------------------------------

def test_the_summary_and_the_report_list_the_follow_ups_with_their_status(w: FakeWorld) -> None:
    incident_id = _resolved(w)
    follow_ups.mark_done(w.svc, DAN, w.store.follow_ups(incident_id)[1].id)
    summary = with_follow_ups(w.store.summary(incident_id), w.store.follow_ups(incident_id))  # type: ignore[arg-type]
    assert [(f.status, f.done_by) for f in summary.follow_ups] == [("open", None), ("done", DAN)]
    _, blocks = summary_blocks(summary)
    from tests.unit.test_blocks import _valid

    _valid(blocks)
    text = str(blocks)
    assert "*Follow-ups* (1/2 done" in text and "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert f"<@{BOB}> · open" in text and f"done by <@{DAN}>" in text
    md = render_markdown(summary)
    assert "## Follow-ups" in md and f"- [ ] Runbook / docs: {TWO[0].text} — owner {BOB} (open)" in md
    assert f"- [x] Test to add: {TWO[1].text} — owner {DAN} (done by {DAN} at " in md
    assert summary.to_json()["follow_ups"][1]["status"] == "done"


def test_the_dm_is_valid_escaped_and_says_the_incident_and_the_cadence(w: FakeWorld) -> None:
    incident_id = _resolved(w)
    incident, follow_up = w.store.get(incident_id), w.store.follow_ups(incident_id)[0]
    assert incident is not None
    text, blocks = follow_up_blocks(incident, follow_up, 2, timedelta(hours=24), "https://x.slack.com/archives/C1/p1")
    from tests.unit.test_blocks import _valid

    _valid(blocks)
    body = str(blocks)
    assert f"Follow-up of RB-{incident_id}" in body and "<https://x.slack.com/archives/C1/p1|" in body
    assert "&lt;!channel&gt;" in body and "<!channel>" not in body + text and "every 1d" in body
    button = [e for b in blocks if b["type"] == "actions" for e in b["elements"]][0]
    assert button["action_id"] == "follow_up_done" and button["value"] == str(follow_up.id)
    done, _, _ = follow_ups.mark_done(w.svc, BOB, follow_up.id)
    _, done_blocks = follow_up_done_blocks(incident, done, None)
    _valid(done_blocks)
    assert not [b for b in done_blocks if b["type"] == "actions"] and f"Done by <@{BOB}>" in str(done_blocks)


def test_a_first_reminder_waits_a_while_for_the_summary_it_links_to(w: FakeWorld) -> None:
    w.notifier.refuse.add("summary")  # the summary is not in Slack yet (its delivery is retried)
    incident_id = _resolved(w, TWO[:1])
    assert w.store.get(incident_id).summary_ts is None  # type: ignore[union-attr]
    assert _run_due(w) == ["retry"] and _reminders(w) == []
    w.clock.advance(follow_ups.SUMMARY_WAIT)
    outcomes = _run_due(w)
    assert "reminded" in outcomes and _reminders(w) == [(BOB, 1)], "sent without the link after the wait"


def test_a_mark_done_value_rollbot_did_not_write_is_not_read() -> None:
    from bot.listeners.follow_ups import follow_up_id

    def body(value: object) -> dict[str, Any]:
        return {"actions": [{"action_id": "follow_up_done", "value": value}]}

    assert follow_up_id(body("12")) == 12
    for forged in ("", "12:3", "-1", "１２", "9" * 12, None, 12):
        assert follow_up_id(body(forged)) is None
    assert follow_up_id({}) is None and follow_up_id({"actions": "x"}) is None


def test_an_owner_slack_keeps_refusing_gets_the_next_round_and_the_resolver_is_told(w: FakeWorld) -> None:
    incident_id = _resolved(w, [NewFollowUp("docs", "Document the purge", BOB)])
    w.notifier.refuse.add("follow_up")  # a deactivated account, say
    for _ in range(12):
        _run_due(w)
        w.clock.advance(timedelta(minutes=20))
    outcomes = [e.outcome for e in w.store.audit_log(incident_id) if e.action == "follow_up.remind"]
    assert outcomes.count("failed") == follow_ups.ROUND_TRIES and "given_up" in outcomes
    told = [text for user, text in w.notifier.sent.get("tell", []) if user == CAROL]
    assert any("could not DM <@U01BOB>" in text for text in told)
    w.notifier.refuse.clear()
    w.clock.advance(w.svc.policy.follow_ups.every)
    _run_due(w)
    assert [(n, r) for n, r in _reminders(w)] == [("U01BOB", 2)]  # the next round, at the cadence


def test_a_summary_posted_after_a_follow_up_was_done_shows_it_done(w: FakeWorld) -> None:
    w.notifier.refuse.add("summary")  # the summary is late: the DM goes out without its link
    incident_id = _resolved(w, [NewFollowUp("docs", "Document the purge", BOB)])
    w.clock.advance(follow_ups.SUMMARY_WAIT + timedelta(minutes=1))
    for _ in range(6):
        _run_due(w)
        w.clock.advance(timedelta(minutes=10))
    [follow_up] = w.store.follow_ups(incident_id)
    follow_ups.mark_done(w.svc, BOB, follow_up.id)
    follow_ups.refresh_summary(w.svc, incident_id)  # nothing posted yet to redraw
    w.notifier.refuse.clear()
    for _ in range(3):
        w.clock.advance(timedelta(minutes=10))
        _run_due(w)
    [(_, posted)] = w.notifier.sent["summary"]
    assert [f.status for f in posted.follow_ups] == ["done"]


def test_a_long_follow_up_is_shown_whole_in_the_summary(w: FakeWorld) -> None:
    text = ("R&D <-> QA & ops " * 40)[: follow_ups.TEXT_LIMIT]
    incident_id = _resolved(w, [NewFollowUp("docs", text, BOB)])
    summary = w.store.summary(incident_id)
    assert summary is not None
    shown = summary_blocks(with_follow_ups(summary, w.store.follow_ups(incident_id)))[1]
    joined = "".join(b.get("text", {}).get("text", "") for b in shown if b.get("type") == "section")
    assert "R&amp;D &lt;-&gt; QA &amp; ops" in joined and "…" not in joined.split("Follow-ups")[-1]
