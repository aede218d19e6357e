"""integrations.cores: which core the worker keeps to, from /proc/stat samples (no process moved)."""

from __future__ import annotations

import threading

from integrations.cores import MARGIN, OneCore, choose, read_stat

STAT = """cpu  300 0 100 1000 10 0 0 0 0 0
cpu0 200 0 50 400 5 0 0 0 0 0
cpu1 100 0 50 600 5 0 0 0 0 0
intr 12345
ctxt 999
"""


def test_proc_stat_gives_each_cores_busy_and_total_ticks_without_idle_and_iowait() -> None:
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
    """A fake /proc/stat whose cores' ticks the test advances, and a record of every move."""

    def __init__(self) -> None:
        self.busy = {0: 0, 1: 0}
        self.total = 0
        self.load = (0, 0)  # busy ticks each core gains between two reads (of 500)
        self.moves: list[int] = []
        self.moved = threading.Event()

    def stat(self) -> str:
        self.advance(*self.load)
        return "\n".join(f"cpu{c} {b} 0 0 {self.total - b} 0 0 0 0" for c, b in self.busy.items())

    def advance(self, busy0: int, busy1: int, total: int = 500) -> None:
        self.busy[0] += busy0
        self.busy[1] += busy1
        self.total += total

    def move(self, core: int) -> None:
        self.moves.append(core)
        self.moved.set()


def test_it_keeps_to_the_least_busy_core_moves_when_that_changes_and_places_every_thread_each_look() -> None:
    machine = _Machine()
    machine.load = (400, 0)
    placement = OneCore(every=0.02, stat=machine.stat, own_ticks=lambda: 0, move=machine.move,
                        allowed=lambda: {0, 1})
    try:
        assert placement.start()
        assert machine.moves == [1] and placement.core == 1  # core 0 was the busy one
        machine.moved.clear()
        assert machine.moved.wait(2)  # the next look places every thread again, on the same core
        assert machine.moves[-1] == 1
        machine.load = (0, 450)  # now core 1 is the busy one (and not by this process)
        deadline = threading.Event()
        for _ in range(200):
            if machine.moves[-1] == 0:
                break
            deadline.wait(0.01)
        assert machine.moves[-1] == 0 and placement.core == 0
    finally:
        placement.stop()


def test_with_one_core_allowed_nothing_is_moved_and_children_keep_theirs() -> None:
    machine = _Machine()
    placement = OneCore(stat=machine.stat, move=machine.move, allowed=lambda: {3})
    assert placement.start() is False
    assert machine.moves == [] and placement.core is None
