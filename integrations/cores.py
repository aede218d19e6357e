"""One CPU core at a time for a process of many Python threads (Linux; `rollbot worker`).

A process's threads share one interpreter lock. Spread over several cores they hand it from
core to core: a thread woken on one waits for the lock held on another, and the kernel parks and
wakes them again and again. In the benchmark (2 cores) that made `rollbot worker` spend 52-65 ms
of CPU per rollback, a third of it in the kernel; on one core, 28-30 ms, and its calls to Vercel
went out a third sooner in a burst. The interpreter runs one thread at a time anyway, so one core
costs it little: only what C code does without the lock (socket I/O, TLS) could overlap.

:class:`OneCore` keeps every thread of this process on one of the cores it may use: the least
busy, not counting this process's own use, looked at again every few seconds (a move needs a
clear difference, so it does not flap). The tools the process starts (pg_dump, pg_restore) get
back every core it could use (:func:`release`).

    placement = OneCore()
    placement.start()          # False where it cannot apply: no sched_setaffinity, or one core
    release(child.pid)         # a child process: every core this process started with
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("rollbot.cores")

EVERY = 5.0  # seconds between looks at the cores' load
MARGIN = 0.15  # a move needs another core this much less busy (a share of the interval)

_started_with: set[int] | None = None  # the cores this process could use before it kept to one

Sample = dict[int, tuple[int, int]]  # core -> (busy ticks, total ticks) since boot


def read_stat(text: str) -> Sample:
    """Per-core busy and total clock ticks from ``/proc/stat``'s ``cpuN`` lines (busy: all but
    idle and iowait)."""
    found: Sample = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        ticks = [int(value) for value in rest.split()[:8]]
        total = sum(ticks)
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        found[int(name[3:])] = (total - idle, total)
    return found


def choose(before: Sample, after: Sample, allowed: set[int], current: int | None, own_ticks: int) -> int:
    """The core to keep to next: the least busy of ``allowed`` between the two samples, with this
    process's own ``own_ticks`` taken off the core it was on; ``current`` unless another is at
    least ``MARGIN`` less busy."""
    load: dict[int, float] = {}
    for core in sorted(allowed):
        if core not in before or core not in after:
            continue
        busy = after[core][0] - before[core][0] - (own_ticks if core == current else 0)
        total = after[core][1] - before[core][1]
        load[core] = max(0, busy) / total if total > 0 else 0.0
    if not load:
        return current if current is not None else min(allowed)
    best = min(load, key=lambda core: (load[core], core))
    if current in load and load[current] - load[best] < MARGIN:
        return current
    return best


class OneCore:
    """Keeps this process's threads on one core, chosen again every ``every`` seconds."""

    def __init__(self, *, every: float = EVERY, stat: Callable[[], str] | None = None,
                 own_ticks: Callable[[], int] | None = None,
                 move: Callable[[int], None] | None = None,
                 allowed: Callable[[], set[int]] | None = None) -> None:
        self._every = every
        self._allowed = allowed or (lambda: os.sched_getaffinity(0))
        self._stat = stat or (lambda: Path("/proc/stat").read_text())
        self._own_ticks = own_ticks or _own_ticks
        self._move = move or _move_all_threads
        self._stop = threading.Event()
        self.core: int | None = None

    def start(self) -> bool:
        """Keep to the least busy core now, and look again every few seconds (a daemon thread).
        False, and nothing changed, where it cannot apply."""
        global _started_with
        if not hasattr(os, "sched_setaffinity"):
            return False
        allowed = set(self._allowed())
        if len(allowed) < 2:
            return False
        try:
            before = read_stat(self._stat())
            time.sleep(0.1)  # a first look at the load: the cores' ticks over a tenth of a second
            first = read_stat(self._stat())
        except OSError:
            return False
        _started_with = set(allowed)
        self.core = choose(before, first, allowed, None, 0)
        self._move(self.core)
        log.info("worker keeps to one CPU core at a time (core %d now, of %s; ROLLBOT_WORKER_ONE_CORE)",
                 self.core, ",".join(map(str, sorted(allowed))))
        threading.Thread(target=self._run, args=(allowed, first), name="rollbot-one-core", daemon=True).start()
        return True

    def stop(self) -> None:
        self._stop.set()

    def _run(self, allowed: set[int], before: Sample) -> None:
        own_before = self._own_ticks()
        while not self._stop.wait(self._every):
            try:
                after, own_after = read_stat(self._stat()), self._own_ticks()
                core = choose(before, after, allowed, self.core, own_after - own_before)
                if core != self.core:
                    log.debug("worker moves from core %s to core %d", self.core, core)
                self.core = core
                self._move(core)  # every time: threads started since the last look may sit elsewhere
                before, own_before = after, own_after
            except Exception:  # never let placement stop the worker
                log.warning("could not place the worker on one core", exc_info=True)


def release(pid: int) -> None:
    """Give a child process every core this one could use before it kept to one (a no-op when it
    never did). A child inherits its parent's one core; a database dump must not."""
    if _started_with is None:
        return
    try:
        os.sched_setaffinity(pid, _started_with)
    except OSError:
        pass  # it ended already, or the platform refuses: it runs where it was started


def _move_all_threads(core: int) -> None:
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), {core})
        except (ProcessLookupError, FileNotFoundError):
            continue  # a thread that ended meanwhile


def _own_ticks() -> int:
    """This process's CPU (user + system) in clock ticks, as ``/proc/stat`` counts them."""
    times = os.times()
    return round((times.user + times.system) * os.sysconf("SC_CLK_TCK"))

