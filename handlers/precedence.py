"""Provider calls first: while an execution is on its way to the change it was approved for, the
rest of the worker's work (thread posts, message redraws, the read-back of executions that have
already sent theirs, reminders) gives way to it.

Under a burst (many rollbacks approved at once, in a multi-service incident) every thread of the
worker wants the CPU. Without an order, the hundredth approval's change waits behind the
bookkeeping of the ninety-nine before it; with this one, the changes go out first and the
bookkeeping follows. Nothing is skipped and no guarantee changes: work that gives way only starts
later, and never waits longer than ``WINDOW`` in all (an execution stays urgent at most that long,
however long its kind takes to reach its change).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

WINDOW = 3.0  # seconds: the longest an execution counts as urgent, and the longest anything waits for it


class Precedence:
    def __init__(self, window: float = WINDOW, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._window, self._monotonic = window, monotonic
        self._cond = threading.Condition()
        self._urgent: dict[int, float] = {}  # token -> until when it counts
        self._tokens = itertools.count()
        self._local = threading.local()

    @contextmanager
    def urgent(self) -> Iterator[None]:
        """This thread's execution, up to its change: nothing else waits for it beyond the window."""
        token = next(self._tokens)
        with self._cond:
            self._urgent[token] = self._monotonic() + self._window
        self._local.token = token
        try:
            yield
        finally:
            self.relax()

    def relax(self) -> None:
        """This thread's change is about to go out: it is no longer ahead of the rest (a no-op
        for a thread that is not urgent, or not any more)."""
        token = getattr(self._local, "token", None)
        if token is None:
            return
        self._local.token = None
        with self._cond:
            self._urgent.pop(token, None)
            if not self._live():  # the waiters go once none is left (each wakes alone at its time limit)
                self._cond.notify_all()

    def give_way(self) -> float:
        """Wait while another thread's execution is urgent, at most the window; returns the
        seconds waited. An urgent thread never waits (for itself or for another)."""
        if getattr(self._local, "token", None) is not None:
            return 0.0
        started = self._monotonic()
        latest = started + self._window
        with self._cond:
            while self._live():
                now = self._monotonic()
                until = min(latest, max(self._urgent.values()))
                if now >= until:
                    break
                self._cond.wait(until - now)
        return self._monotonic() - started

    def _live(self) -> bool:
        now = self._monotonic()
        for token, until in list(self._urgent.items()):
            if until <= now:
                del self._urgent[token]
        return bool(self._urgent)
