"""integrations.cores: which core the worker keeps to, from /proc/stat samples, with fakes for
the moves (no thread of the test process is moved)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from integrations import cores
from integrations.cores import MARGIN, OneCore, choose, read_stat

STAT = """cpu  300 0 100 1000 10 0 0 0 70 0
cpu0 200 0 50 400 5 0 0 0 40 0
cpu1 100 0 50 600 5 0 0 0 30 0
intr 12345
ctxt 999
"""


@pytest.fixture(autouse=True)
def _forget_the_start() -> Iterator[None]:
    """What a start remembers for the children (``release``) stays in its test."""
    yield
    cores._started_with = None


def test_proc_stat_gives_each_cores_busy_and_total_ticks_without_idle_iowait_and_guest() -> None:
    # guest time is already counted in user; idle and iowait are not busy
    assert read_stat(STAT) == {0: (250, 655), 1: (150, 755)}


def _sample(busy0: int, busy1: int, total: int = 1000) -> dict[int, tuple[int, int]]:
    return {0: (busy0, total), 1: (busy1, total)}


def test_the_least_busy_core_is_chosen_and_ties_go_to_the_lower_number() -> None:
    before = _sample(0, 0, 0)
    assert choose(before, _sample(800, 100), {0, 1}, None, 0) == 1
    assert choose(before, _sample(100, 800), {0, 1}, None, 0) == 0
    assert choose(before, _sample(500, 500), {0, 1}, None, 0) == 0


def test_only_allowed_cores_are_chosen() -> None:
    before = {0: (0, 0), 1: (0, 0), 2: (0, 0)}
    after = {0: (900, 1000), 1: (100, 1000), 2: (500, 1000)}
    assert choose(before, after, {0, 2}, None, 0) == 2


def test_its_own_use_does_not_push_it_off_its_core() -> None:
    # Core 0 was 70 % busy, 60 points of it this process: the rest is 10 %, less than core 1's 30 %.
    before = _sample(0, 0, 0)
    assert choose(before, _sample(700, 300), {0, 1}, 0, own_ticks=600) == 0
    assert choose(before, _sample(700, 300), {0, 1}, 0, own_ticks=0) == 1


def test_a_move_needs_a_clear_difference() -> None:
    before = _sample(0, 0, 0)
    just_under = round((MARGIN - 0.01) * 1000)
    assert choose(before, _sample(300 + just_under, 300), {0, 1}, 0, 0) == 0  # stays
    assert choose(before, _sample(300 + just_under + 20, 300), {0, 1}, 0, 0) == 1  # moves


class _Machine:
    """A fake /proc/stat whose cores gain ``load`` busy ticks (of 500) between two reads, and a
    record of every move."""

    def __init__(self, names: tuple[int, ...] = (0, 1)) -> None:
        self.busy = dict.fromkeys(names, 0)
        self.total = 0
        self.load: dict[int, int] = {}
        self.moves: list[int] = []
        self.refuse: set[int] = set()

    def stat(self) -> str:
        for core in self.busy:
            self.busy[core] += self.load.get(core, 0)
        self.total += 500
        return "\n".join(f"cpu{c} {b} 0 0 {self.total - b} 0 0 0 0" for c, b in self.busy.items())

    def move(self, core: int) -> None:
        if core in self.refuse:
            raise OSError(22, "Invalid argument")
        self.moves.append(core)


def _until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_it_keeps_to_the_least_busy_core_moves_when_that_changes_and_places_every_thread_each_look() -> None:
    machine = _Machine()
    machine.load = {0: 400}
    placement = OneCore(every=0.02, stat=machine.stat, own_ticks=lambda: 0, move=machine.move,
                        allowed=lambda: {0, 1})
    try:
        assert placement.start()
        assert machine.moves[0] == 1 and placement.core == 1  # core 0 was the busy one
        assert cores._started_with == {0, 1}  # what its children get back
        assert _until(lambda: len(machine.moves) >= 3)  # each look places every thread again
        assert set(machine.moves) == {1}
        machine.load = {1: 450}  # now core 1 is the busy one (and not by this process)
        assert _until(lambda: machine.moves[-1] == 0)
        assert placement.core == 0
    finally:
        placement.stop()


def test_nothing_is_moved_with_one_core_or_cores_proc_stat_does_not_name() -> None:
    machine = _Machine()
    assert OneCore(stat=machine.stat, move=machine.move, allowed=lambda: {3}).start() is False
    # LXCFS numbers a container's cores from 0 in /proc/stat: cpuset 4-5 shows as cpu0 and cpu1
    assert OneCore(stat=machine.stat, move=machine.move, allowed=lambda: {4, 5}).start() is False
    assert machine.moves == [] and cores._started_with is None


def test_without_the_interpreter_lock_it_does_not_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    machine = _Machine()
    assert OneCore(stat=machine.stat, move=machine.move, allowed=lambda: {0, 1}).start() is False
    assert machine.moves == []


def test_a_refused_first_move_leaves_the_worker_as_it_was_and_running() -> None:
    machine = _Machine()
    machine.load = {0: 400}
    machine.refuse = {1}  # seccomp, or a cpuset: the kernel says no
    placement = OneCore(stat=machine.stat, move=machine.move, allowed=lambda: {0, 1})
    earlier = set(threading.enumerate())
    assert placement.start() is False
    assert placement.core is None and cores._started_with is None and machine.moves == []
    assert not [t for t in set(threading.enumerate()) - earlier if t.name == "rollbot-one-core"]  # no looks started


def test_a_look_that_cannot_move_keeps_what_it_had_and_the_next_one_tries_again() -> None:
    machine = _Machine()
    machine.load = {0: 400}
    allowed = {0, 1}
    placement = OneCore(stat=machine.stat, own_ticks=lambda: 0, move=machine.move, allowed=lambda: allowed)
    before = read_stat(machine.stat())
    machine.load = {1: 400}
    placement.core = 1
    after = read_stat(machine.stat())
    machine.refuse = {0}
    with pytest.raises(OSError):
        placement._look(before, after, 0)
    assert placement.core == 1  # not the core it could not move to
    machine.refuse = set()
    placement._look(before, after, 0)
    assert placement.core == 0 and machine.moves[-1] == 0
    allowed.discard(1)  # the cpuset shrank to one core: nothing to choose, nothing moved
    placement._look(before, after, 0)
    assert machine.moves == [0]
