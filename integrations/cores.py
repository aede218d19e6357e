"""One CPU core at a time for a process of many Python threads (Linux; `rollbot worker`).

A process's threads share one interpreter lock. Spread over several cores they hand it from
core to core: a thread woken on one waits for the lock held on another, and the kernel parks and
wakes them again and again. In the benchmark (a 2-core VM) that made `rollbot worker` spend 52-65
ms of CPU per rollback, a third of it in the kernel; on one core 27-30 ms, and in a burst its
calls to Vercel went out about twice as soon (one A/B pair). The interpreter runs one thread at a
time anyway, so one core costs it little: what C code does without the lock (socket I/O, TLS)
no longer overlaps, and the process never uses more than one core.

:class:`OneCore` keeps every thread of this process on one of the cores it may use: the least
busy, not counting this process's own use, looked at again every two seconds or so (a move
needs a clear difference, so it does not flap), and on those the process may use then (a cpuset
that changes is followed). Child processes (pg_dump, pg_restore) get back the cores the process
started with (:func:`release`).

    placement = OneCore()
    placement.start()          # False where it cannot apply, or fails: the kernel spreads it
    release(child.pid)         # a child process: the cores this process started with
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("rollbot.cores")

EVERY = 2.0  # seconds between looks at the cores' load (a look costs about a millisecond)
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
    """Keeps this process's threads on one core, chosen again every ``every`` seconds (give or
    take a fifth, so two such processes on one host do not look at the same moments)."""

    def __init__(self, *, every: float = EVERY, stat: Callable[[], str] | None = None,
                 own_ticks: Callable[[], int] | None = None,
                 move: Callable[[int], None] | None = None,
                 allowed: Callable[[], set[int]] | None = None) -> None:
        self._every = every
        self._stat = stat or (lambda: Path("/proc/stat").read_text())
        self._own_ticks = own_ticks or _own_ticks
        self._move = move or _move_all_threads
        self._allowed = allowed
        self._stop = threading.Event()
        self._warned = 0.0
        self.core: int | None = None

    def start(self) -> bool:
        """Keep to the least busy core now, and look again every few seconds (a daemon thread).
        False, with nothing changed, where it cannot apply or fails: no sched_setaffinity, one
        core, Python without the interpreter lock, a /proc/stat that does not number the cores
        this process may use (LXCFS renumbers a container's), or a refused move."""
        global _started_with
        if self._allowed is None and not hasattr(os, "sched_setaffinity"):
            return False
        if not getattr(sys, "_is_gil_enabled", lambda: True)():
            return False  # free-threaded: its threads do run at once, on as many cores as they get
        try:
            allowed = self._allowed() if self._allowed is not None else os.sched_getaffinity(0)
            before = read_stat(self._stat())
            if len(allowed) < 2 or len(allowed & before.keys()) < 2:
                return False
            time.sleep(0.1)  # a first look at the load: the cores' ticks over a tenth of a second
            first = read_stat(self._stat())
            core = choose(before, first, allowed, None, 0)
            self._move(core)
        except Exception as error:  # a performance measure never stops the worker
            log.warning("the worker could not keep to one CPU core (%s); the kernel spreads it", error)
            return False
        _started_with, self.core = set(allowed), core
        log.info("worker keeps to one CPU core at a time (core %d now, of %s; ROLLBOT_WORKER_ONE_CORE)",
                 core, ",".join(map(str, sorted(allowed))))
        threading.Thread(target=self._run, args=(first,), name="rollbot-one-core", daemon=True).start()
        return True

    def stop(self) -> None:
        self._stop.set()

    def _run(self, before: Sample) -> None:
        own_before = self._own_ticks()
        while not self._stop.wait(self._every * random.uniform(0.8, 1.2)):
            try:
                after, own_after = read_stat(self._stat()), self._own_ticks()
                self._look(before, after, own_after - own_before)
                before, own_before = after, own_after
            except Exception as error:  # never let placement stop the worker
                self._warn(error)

    def _look(self, before: Sample, after: Sample, own: int) -> None:
        allowed = self._allowed() if self._allowed is not None else _allowed_now()
        if len(allowed & after.keys()) < 2:
            return  # one core left to it (or none /proc/stat names): nothing to choose
        core = choose(before, after, allowed, self.core if self.core in allowed else None, own)
        if core != self.core:
            log.debug("worker moves from core %s to core %d", self.core, core)
        self._move(core)  # every time: threads started since the last look may sit elsewhere
        self.core = core

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned >= 300:  # once in five minutes at most
            self._warned = now
            log.warning("could not keep the worker on one CPU core (%s)", error)


def release(pid: int) -> None:
    """Give a child process the cores this one could use before it kept to one (a no-op when it
    never did; every core when none of those is left to it). A child inherits its parent's one
    core; a database dump must not."""
    if _started_with is None:
        return
    for cores in (_started_with, set(range(os.cpu_count() or 1))):
        try:
            os.sched_setaffinity(pid, cores)
            return
        except ProcessLookupError:
            return  # it ended already
        except OSError:
            continue  # none of those is left to it (a cpuset changed): try every core


def threads(pid: int) -> list[int]:
    """The thread ids of process ``pid``; none when it has ended."""
    try:
        return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def place(tids: list[int], cores: set[int]) -> None:
    """Every thread of ``tids`` onto ``cores``; a thread that ended meanwhile is skipped, and the
    first refusal is raised after trying them all."""
    refused: OSError | None = None
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cores)
        except ProcessLookupError:
            continue
        except OSError as error:  # the cores are no longer this process's (a cpuset changed)
            refused = refused or error
    if refused is not None:
        raise refused


def cores_of(tids: list[int]) -> set[int]:
    """The cores any of these threads may run on, read now."""
    found: set[int] = set()
    for tid in tids:
        try:
            found |= os.sched_getaffinity(tid)
        except ProcessLookupError:
            continue
    return found


def _move_all_threads(core: int) -> None:
    place(threads(os.getpid()), {core})


def _allowed_now() -> set[int]:
    """The cores this process may use now: the calling thread asks for those it started with
    (or, when none of them is left to it, for every core) and reads back what the kernel gave,
    which is that intersected with its cpuset and the cores online. The next move puts the
    thread back on one."""
    wanted = _started_with or set(range(os.cpu_count() or 1))
    try:
        os.sched_setaffinity(0, wanted)
    except OSError:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return os.sched_getaffinity(0)


def _own_ticks() -> int:
    """This process's CPU (user + system) in clock ticks, as ``/proc/stat`` counts them."""
    times = os.times()
    return round((times.user + times.system) * os.sysconf("SC_CLK_TCK"))

