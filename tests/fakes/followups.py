"""The in-memory follow-ups of ``tests.fakes.store.FakeStore``: the ``FollowUps`` port on a
dict, with the same promises as ``integrations.pg_followups`` (the contract tests run on both)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from handlers.model import FollowUp, NewFollowUp
from handlers.store import FOLLOW_UP_JOB, NewJob


class FakeFollowUps:
    lock: threading.RLock
    jobs: dict[int, Any]
    follow_up_rows: dict[int, FollowUp]
    _follow_up_ids: itertools.count[int]

    def _insert_jobs(self, incident_id: int | None, jobs: Sequence[NewJob]) -> None:
        raise NotImplementedError  # FakeStore provides it

    def _insert_follow_ups(self, incident_id: int, follow_ups: Sequence[NewFollowUp], at: datetime) -> None:
        jobs = []
        for item in follow_ups:
            follow_up_id = next(self._follow_up_ids)
            self.follow_up_rows[follow_up_id] = FollowUp(follow_up_id, incident_id, item.category, item.text,
                                                         item.owner, at)
            jobs.append(NewJob(FOLLOW_UP_JOB, at, {"follow_up": follow_up_id, "round": 1}))
        self._insert_jobs(incident_id, jobs)

    def follow_ups(self, incident_id: int) -> list[FollowUp]:
        with self.lock:
            return [f for _, f in sorted(self.follow_up_rows.items()) if f.incident_id == incident_id]

    def follow_up(self, follow_up_id: int) -> FollowUp | None:
        with self.lock:
            return self.follow_up_rows.get(follow_up_id)

    def next_follow_up_reminder(self, follow_up_id: int, after_round: int, due_at: datetime) -> bool:
        with self.lock:
            found = self.follow_up_rows.get(follow_up_id)
            if found is None or found.rounds != after_round or found.done:
                return False
            self.follow_up_rows[follow_up_id] = replace(found, rounds=after_round + 1)
            self._insert_jobs(found.incident_id,
                              [NewJob(FOLLOW_UP_JOB, due_at, {"follow_up": follow_up_id, "round": after_round + 1})])
            return True

    def follow_up_done(self, follow_up_id: int, by: str, at: datetime) -> FollowUp | None:
        with self.lock:
            found = self.follow_up_rows.get(follow_up_id)
            if found is None or found.done:
                return None
            done = self.follow_up_rows[follow_up_id] = replace(found, done_by=by, done_at=at)
            for job in self.jobs.values():
                if job.kind == FOLLOW_UP_JOB and job.status == "due" and job.payload.get("follow_up") == follow_up_id:
                    job.status = "cancelled"
            return done
