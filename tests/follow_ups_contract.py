"""The ``FollowUps`` port's contract, run on the in-memory fake (tests/unit) and on Postgres
(tests/integration) beside ``tests.store_contract``: stored with the resolution or not at all, the
next reminder scheduled once, done once (its reminders cancelled)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from handlers.code import CodeKind
from handlers.model import NewFollowUp, Resolution, Status
from handlers.store import FOLLOW_UP_JOB, IncidentStore, NewJob
from handlers.summary import build_summary
from tests.store_contract import LEASE, T0, new

ITEMS = [NewFollowUp("docs", "Runbook: purge the cache", "U01BOB"), NewFollowUp("tests", "Stale cache test", "U01DAN")]


class FollowUpsContract:
    def _resolved(self, store: IncidentStore, items: list[NewFollowUp] = ITEMS) -> int:
        incident = store.create_incident(new())
        assert store.approve(incident.id, "U01CAROL", incident.plan_hash, T0).decided
        assert store.claim_execution(incident.id, "A", LEASE)
        store.start_monitoring(incident.id, "A", T0, [], [NewJob("monitor", T0, {"index": 1, "total": 1})])
        monitored = store.get(incident.id)
        summary = build_summary(monitored, CodeKind(provider=None), [], [], items)  # type: ignore[arg-type]
        resolved = store.resolve(incident.id, Resolution("U01CAROL", "cause", "lessons", T0), summary,
                                 Status.RESOLVED, T0, items)
        assert resolved is not None
        return incident.id

    def _reminders(self, store: IncidentStore, incident_id: int) -> list[tuple[int, int]]:
        return sorted((j.payload["follow_up"], j.payload["round"]) for j in store.pending_jobs(incident_id)
                      if j.kind == FOLLOW_UP_JOB)

    def test_follow_ups_are_written_with_the_resolution_and_their_first_reminders(self, store: IncidentStore) -> None:
        incident_id = self._resolved(store)
        stored = store.follow_ups(incident_id)
        assert [(f.incident_id, f.category, f.text, f.owner, f.created_at, f.rounds, f.done_by, f.done_at)
                for f in stored] == [(incident_id, "docs", "Runbook: purge the cache", "U01BOB", T0, 1, None, None),
                                     (incident_id, "tests", "Stale cache test", "U01DAN", T0, 1, None, None)]
        assert store.follow_up(stored[1].id) == stored[1] and store.follow_up(stored[1].id + 100) is None
        assert self._reminders(store, incident_id) == [(stored[0].id, 1), (stored[1].id, 1)]
        assert all(j.due_at == T0 for j in store.pending_jobs(incident_id) if j.kind == FOLLOW_UP_JOB)
        assert [f.status for f in store.summary(incident_id).follow_ups] == ["open", "open"]  # type: ignore[union-attr]

    def test_a_second_resolve_writes_no_follow_ups(self, store: IncidentStore) -> None:
        incident_id = self._resolved(store, ITEMS[:1])
        incident, summary = store.get(incident_id), store.summary(incident_id)
        assert incident is not None and incident.resolution is not None and summary is not None
        assert store.resolve(incident_id, incident.resolution, summary, Status.RESOLVED, T0, ITEMS) is None
        assert len(store.follow_ups(incident_id)) == 1 and len(self._reminders(store, incident_id)) == 1
        assert store.follow_ups(incident_id + 100) == []

    def test_the_next_reminder_is_scheduled_once_and_only_while_open(self, store: IncidentStore) -> None:
        incident_id = self._resolved(store)
        first, second = store.follow_ups(incident_id)
        later = T0 + timedelta(hours=24)
        assert not store.next_follow_up_reminder(first.id, 2, later), "round 2 is not the last one scheduled"
        with ThreadPoolExecutor(8) as pool:
            won = list(pool.map(lambda _: store.next_follow_up_reminder(first.id, 1, later), range(8)))
        assert won.count(True) == 1
        assert store.follow_up(first.id).rounds == 2  # type: ignore[union-attr]
        assert self._reminders(store, incident_id) == [(first.id, 1), (first.id, 2), (second.id, 1)]
        assert [j.due_at for j in store.pending_jobs(incident_id)
                if j.kind == FOLLOW_UP_JOB and j.payload["round"] == 2] == [later]
        assert not store.next_follow_up_reminder(first.id + 100, 1, later)

    def test_done_once_by_whoever_is_first_and_its_reminders_are_cancelled(self, store: IncidentStore) -> None:
        incident_id = self._resolved(store)
        first, second = store.follow_ups(incident_id)
        assert store.next_follow_up_reminder(first.id, 1, T0 + timedelta(hours=24))
        at = T0 + timedelta(hours=2)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda n: store.follow_up_done(first.id, f"U0{n}", at), range(8)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1 and winners[0].done and winners[0].done_at == at
        assert store.follow_up(first.id) == winners[0]
        assert store.follow_up_done(first.id, "U01BOB", at) is None
        assert self._reminders(store, incident_id) == [(second.id, 1)], "the other follow-up is still reminded"
        assert not store.next_follow_up_reminder(first.id, 2, T0 + timedelta(hours=48)), "no reminder once done"
        assert store.follow_up_done(first.id + 100, "U01BOB", at) is None
