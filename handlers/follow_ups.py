"""The runbook's "Documentation Updates": follow-ups of a resolved incident (what must change in
the runbook or docs, which tests to add), each with an owner, reminded by DM until done.

The Resolve modal collects them; ``resolution.resolve`` stores them in the resolving transaction
with each one's first reminder due at once. The worker runs the ``follow_up`` jobs here: one DM
per reminder (its own key in the message ledger), then the next one ``[follow_ups] every``
later, scheduled by a conditional write so two runners cannot double it. Only the owner marks a
follow-up done (from the DM's button): done once, audited, and no reminder follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from handlers.durations import format_duration
from handlers.model import FOLLOW_UP_CATEGORIES, FollowUp, Incident, NewFollowUp
from handlers.ports import DeliveryFailed
from handlers.services import Services
from handlers.summary import with_follow_ups

SUMMARY_WAIT = timedelta(minutes=10)  # a first reminder waits this long for the summary it links to
MAX_PER_CATEGORY = 5  # rows of each category the Resolve modal offers ("Add another" up to this)
TEXT_LIMIT = 500  # characters of one follow-up


@dataclass(frozen=True)
class Draft:
    """One row of the Resolve modal as typed: either both parts or neither."""

    category: str
    text: str
    owner: str


@dataclass(frozen=True)
class DraftErrors:
    text: str | None = None
    owner: str | None = None


def check(draft: Draft) -> DraftErrors | None:
    """What is wrong with a row (None when it is fine, or empty: an empty row is no follow-up)."""
    text, owner = draft.text.strip(), draft.owner.strip()
    if draft.category not in FOLLOW_UP_CATEGORIES:
        return DraftErrors(text=f"{draft.category!r} is not a kind of follow-up")
    if not text and not owner:
        return None
    if text and not owner:
        return DraftErrors(owner="Who owns this? Pick an owner, or clear the text.")
    if owner and not text:
        return DraftErrors(text="Say what must be done, or clear the owner.")
    if not (owner[:1] in ("U", "W") and owner.isascii() and owner.isalnum() and len(owner) < 30):
        return DraftErrors(owner="Pick the owner from the list (a person in this workspace).")
    if len(text) > TEXT_LIMIT:
        return DraftErrors(text=f"Keep it to {TEXT_LIMIT} characters (this is {len(text)}); "
                                "link a document for more.")
    return None


def accepted(drafts: list[Draft]) -> list[NewFollowUp]:
    """The rows to store, in the order typed (call after ``check`` passed for every row)."""
    return [NewFollowUp(d.category, d.text.strip(), d.owner.strip()) for d in drafts if d.text.strip()]


def remind(svc: Services, follow_up_id: int, round_: int) -> str:
    """DM the owner reminder ``round_`` of an open follow-up (once: the message ledger), then
    schedule the next one. "retry" when Slack certainly did not take it, "wait" while the summary
    it links to is not posted yet (for ``SUMMARY_WAIT`` at most): the job runs again."""
    follow_up = svc.store.follow_up(follow_up_id)
    incident = svc.store.get(follow_up.incident_id) if follow_up else None
    if follow_up is None or incident is None:
        return "noop"
    if follow_up.done:
        return "done"
    if not incident.summary_ts and svc.clock.now() - follow_up.created_at < SUMMARY_WAIT:
        return "wait"
    latest = svc.store.follow_up(follow_up_id)
    if latest is None or latest.done:  # marked done while this round was being prepared
        return "done"
    outcome = "reminded"
    try:
        svc.notifier.follow_up(incident, follow_up, round_)
    except DeliveryFailed as error:
        if error.definite:
            svc.audit(incident.id, "rollbot", "follow_up.remind", "failed", follow_up=follow_up_id, round=round_,
                      error=str(error))
            if _refusals(svc, incident.id, follow_up_id, round_) < ROUND_TRIES:
                return "retry"
            # Slack keeps refusing this owner's DM (a deactivated account, say): say so where the
            # incident is, and try the next round at the cadence rather than never again.
            svc.audit(incident.id, "rollbot", "follow_up.remind", "given_up", follow_up=follow_up_id, round=round_)
            if incident.channel and incident.resolution:
                svc.notifier.tell(incident.channel, incident.resolution.resolved_by, (
                    f":warning: Rollbot could not DM <@{follow_up.owner}> their follow-up of {incident.ref} "
                    f"({ROUND_TRIES} tries: Slack refused it). It tries again in "
                    f"{format_duration(svc.policy.follow_ups.every)}; `rollbot report {incident.ref}` lists it."))
            svc.store.next_follow_up_reminder(follow_up_id, round_, svc.clock.now() + svc.policy.follow_ups.every)
            return "given_up"
        # A DM is not read back: a reminder that may have arrived is never sent again; the next
        # round follows at the cadence instead.
        outcome = "uncertain"
    svc.audit(incident.id, "rollbot", "follow_up.remind", "ok" if outcome == "reminded" else outcome,
              follow_up=follow_up_id, round=round_, owner=follow_up.owner)
    svc.store.next_follow_up_reminder(follow_up_id, round_, svc.clock.now() + svc.policy.follow_ups.every)
    return outcome


ROUND_TRIES = 6
"""A round whose DM Slack refused this many times (about an hour and a half with the jobs'
backoff) gives way to the next round, at the cadence."""


def _refusals(svc: Services, incident_id: int, follow_up_id: int, round_: int) -> int:
    return sum(1 for e in svc.store.audit_log(incident_id) if e.action == "follow_up.remind"
               and e.outcome == "failed" and e.detail.get("follow_up") == follow_up_id
               and e.detail.get("round") == round_)


def mark_done(svc: Services, user: str, follow_up_id: int) -> tuple[FollowUp, Incident, bool]:
    """The owner marks a follow-up done: (the follow-up, its incident, whether this call did it).
    Anyone else is refused (audited)."""
    follow_up = svc.store.follow_up(follow_up_id)
    incident = svc.store.get(follow_up.incident_id) if follow_up else None
    if follow_up is None or incident is None:
        raise svc.refuse(None, user, "follow_up.done", "That follow-up does not exist; nothing was done.",
                         follow_up=follow_up_id, code="unknown_follow_up")
    if user != follow_up.owner:
        raise svc.refuse(incident.id, user, "follow_up.done", f"Only its owner, <@{follow_up.owner}>, marks this "
                         f"follow-up of {incident.ref} done.", follow_up=follow_up_id, code="not_owner")
    if follow_up.done:
        return follow_up, incident, False
    done = svc.store.follow_up_done(follow_up_id, user, svc.clock.now())
    if done is None:  # a second click raced this one and won
        again = svc.store.follow_up(follow_up_id)
        assert again is not None
        return again, incident, False
    svc.audit(incident.id, user, "follow_up.done", "ok", follow_up=follow_up_id, category=done.category)
    return done, incident, True


def refresh_summary(svc: Services, incident_id: int) -> None:
    """Redraw the posted summary with the follow-ups as they stand (best effort)."""
    incident = svc.store.get(incident_id)
    summary = svc.store.summary(incident_id)
    if incident is None or summary is None or not incident.summary_ts:
        return
    svc.notifier.refresh_summary(incident, with_follow_ups(summary, svc.store.follow_ups(incident_id)))
