"""The runbook's standing rhythm: a rollback drill every quarter and a review of the procedure
(``[drills]`` in the policy file). When the next of each is due, from the last drill and the
date the procedure was last reviewed; and the reminders the leading worker posts about them in
``[drills] channel``.

Each reminder is one number of a series ("drill", "review") in the store's standing ledger, posted
once. Which number is due now is decided here, from the schedule and the series' newest entry:

* not due (a drill within ``every``, a review within ``review_every``): none;
* the newest entry not posted yet (in flight, or its outcome unknown): that one again, so it is
  settled (read back) before any other is posted;
* due, and no reminder since it became due: the next number, at once;
* still due ``remind_every`` (a week by default) after the newest reminder: the next number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from handlers.config import Drills, Policy
from handlers.model import Incident
from handlers.ports import DeliveryFailed
from handlers.store import StandingRecord

if TYPE_CHECKING:
    from handlers.services import Services

log = logging.getLogger("rollbot.core")


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


# -- the reminders ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillReminder:
    """A rollback drill is due: since ``due_since`` (None: there has never been one)."""

    seq: int
    due_since: datetime | None
    every: timedelta
    last_drill: Incident | None
    environments: tuple[str, ...]  # the non-production environments, where a drill may run
    repeat: timedelta  # reminded again this often while it stays due
    series: str = "drill"


@dataclass(frozen=True)
class ReviewReminder:
    """The procedure is due for review: last reviewed ``reviewed``, due since ``due_since``."""

    seq: int
    reviewed: date
    due_since: date
    every: timedelta
    procedure_url: str | None
    today: date
    repeat: timedelta
    series: str = "review"


StandingReminder = DrillReminder | ReviewReminder


def occurrence(due_since: datetime | None, last: StandingRecord | None, now: datetime,
               repeat: timedelta) -> int | None:
    """The number of the reminder to post now for something that is due (since ``due_since``;
    None when it has always been), given the series' newest ledger entry; None for none."""
    if last is None:
        return 1
    if last.state != "posted":
        return last.seq  # settle that one first: it may be in Slack already
    shown = last.posted_at or last.since  # when it was known to be in Slack, however late that was settled
    if due_since is not None and shown < due_since:
        return last.seq + 1  # a new occasion (a drill or a review since): remind at once
    return last.seq + 1 if now >= shown + repeat else None


def drill_reminder(policy: Policy, sched: DrillSchedule, last: StandingRecord | None,
                   now: datetime) -> DrillReminder | None:
    if not sched.drill_overdue(now):
        return None
    seq = occurrence(sched.next_drill, last, now, policy.drills.remind_every)
    if seq is None:
        return None
    places = tuple(name for name in policy.environments if not policy.is_production(name))
    return DrillReminder(seq, sched.next_drill, policy.drills.every, sched.last_drill, places,
                         policy.drills.remind_every)


def review_reminder(policy: Policy, sched: DrillSchedule, last: StandingRecord | None,
                    now: datetime) -> ReviewReminder | None:
    drills = policy.drills
    if sched.next_review is None or drills.procedure_reviewed is None or not sched.review_overdue(now.date()):
        return None
    seq = occurrence(datetime.combine(sched.next_review, time(), UTC), last, now, drills.remind_every)
    if seq is None:
        return None
    return ReviewReminder(seq, drills.procedure_reviewed, sched.next_review, drills.review_every,
                          drills.procedure_url, now.date(), drills.remind_every)


def due_reminders(svc: Services) -> list[StandingReminder]:
    """The reminders to post now; none without ``[drills] channel``."""
    if not svc.policy.drills.channel:
        return []
    now = svc.clock.now()
    sched = schedule(svc.policy.drills, svc.store.last_rolled_back(drill=True))
    found = (drill_reminder(svc.policy, sched, _last(svc, "drill", now), now),
             review_reminder(svc.policy, sched, _last(svc, "review", now), now))
    return [reminder for reminder in found if reminder is not None]


DOUBT_GIVEN_UP = timedelta(days=1)
"""A reminder whose outcome stayed unknown this long (Slack could not be read back, or nothing
was due any more to settle it) is let go: the series moves on. At worst a reminder Slack did take
is followed by the next one later, never a burst of them."""


def _last(svc: Services, series: str, now: datetime) -> StandingRecord | None:
    last = svc.store.last_standing(series)
    if last is not None and last.state != "posted" and now - last.since > DOUBT_GIVEN_UP:
        svc.store.standing_not_posted(series, last.seq)
        log.warning("%s reminder %s stayed in doubt since %s; letting it go", series, last.seq, last.since)
        svc.audit(None, "rollbot", f"remind.{series}", "given_up", seq=last.seq)
        return svc.store.last_standing(series)
    return last


def remind(svc: Services) -> list[str]:
    """Post what is due, each once (the leading worker's upkeep, every tick). A reminder Slack
    did not take is tried again next tick; one whose outcome is unknown is read back first.
    Returns the reminders posted ("drill.1")."""
    posted = []
    for reminder in due_reminders(svc):
        name = f"{reminder.series}.{reminder.seq}"
        try:
            svc.notifier.standing_reminder(reminder)
        except DeliveryFailed as error:
            log.warning("%s reminder %s not posted yet, trying again next tick: %s", reminder.series, name, error)
            continue
        svc.audit(None, "rollbot", f"remind.{reminder.series}", "ok", seq=reminder.seq)
        posted.append(name)
    return posted
