"""The runbook's standing rhythm: a rollback drill every quarter and a review of the procedure
(``[drills]`` in the policy file). When the next of each is due, from the last drill and the
date the procedure was last reviewed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from handlers.config import Drills
from handlers.model import Incident


@dataclass(frozen=True)
class DrillSchedule:
    last_drill: Incident | None
    next_drill: datetime | None  # None: no drill yet, so one is due now
    next_review: date | None  # None: the policy does not say when the procedure was last reviewed
    procedure_url: str | None

    def drill_overdue(self, now: datetime) -> bool:
        return self.next_drill is None or self.next_drill <= now

    def review_overdue(self, today: date) -> bool:
        return self.next_review is not None and self.next_review <= today


def schedule(drills: Drills, last_drill: Incident | None) -> DrillSchedule:
    done = last_drill.rolled_back_at if last_drill else None
    return DrillSchedule(
        last_drill=last_drill,
        next_drill=done + drills.every if done else None,
        next_review=drills.procedure_reviewed + timedelta(days=drills.review_every.days)
        if drills.procedure_reviewed else None,
        procedure_url=drills.procedure_url,
    )
