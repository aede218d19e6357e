"""The execution's progress message: the kind's steps and the verification, as they stand, redrawn
beside the work and never in its way."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

from handlers.services import Services, log

STEP_VERIFY = "verify"


class ProgressUpdates:
    """Redraws the progress message beside the work, never in its way: Slack's posting pace (a
    second per message in a busy channel) must not delay a provider call. Pokes that arrive
    while a redraw is queued fold into it (each redraw shows the steps as they are then)."""

    def __init__(self, svc: Services, incident_id: int) -> None:
        self._svc, self._incident_id = svc, incident_id
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"rollbot-progress-{incident_id}")
        self._queued = threading.Event()

    def poke(self) -> None:
        if not self._queued.is_set():
            self._queued.set()
            self._pool.submit(contextvars.copy_context().run, self._redraw)  # the incident's log context

    def _redraw(self) -> None:
        self._svc.precedence.give_way()  # executions still on their way to a change go first
        self._queued.clear()
        try:
            progress(self._svc, self._incident_id)
        except Exception:  # best effort, like every thread note
            log.warning("progress message not updated", extra={"incident": self._incident_id})

    def close(self) -> None:
        """Wait for the last redraw (so the message never shows an older state than the thread)."""
        self._pool.shutdown(wait=True)


def progress(svc: Services, incident_id: int) -> None:
    found = svc.store.incident_with_steps(incident_id)
    assert found is not None
    incident, stored = found
    order = [step.name for step in svc.kinds[incident.kind].steps] + [STEP_VERIFY]
    steps = sorted((s for s in stored if s.name in order), key=lambda s: order.index(s.name))
    ts = svc.notifier.progress(incident, steps)
    if ts and ts != incident.progress_ts:
        svc.store.set_refs(incident_id, progress_ts=ts)
