"""Provider calls first (handlers.precedence): what gives way, to what, and for how long; and the
worker's order under a burst, on the fakes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bot.worker import Worker
from handlers import approvals
from handlers.precedence import Precedence
from tests.fakes.world import ALICE, CAROL, fake_world


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, float]]:
    out: dict[str, float] = {}
    thread = threading.Thread(target=lambda: out.setdefault("waited", fn()))
    thread.start()
    return thread, out


def _urgent_until(precedence: Precedence, release: threading.Event, entered: threading.Event) -> threading.Thread:
    def hold() -> None:
        with precedence.urgent():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(5)
    return thread


def test_nothing_waits_when_no_execution_is_urgent() -> None:
    assert Precedence().give_way() < 0.05


def test_an_urgent_thread_never_waits_for_itself_or_another() -> None:
    precedence = Precedence()
    release, entered = threading.Event(), threading.Event()
    other = _urgent_until(precedence, release, entered)
    with precedence.urgent():
        started = time.monotonic()
        assert precedence.give_way() == 0.0
        assert time.monotonic() - started < 0.05
    release.set()
    other.join()


def test_work_waits_until_the_last_urgent_execution_relaxes() -> None:
    precedence = Precedence()
    releases = [threading.Event(), threading.Event()]
    urgent = [_urgent_until(precedence, release, threading.Event()) for release in releases]
    waiter, out = _in_thread(precedence.give_way)
    releases[0].set()
    urgent[0].join()
    time.sleep(0.2)
    assert waiter.is_alive()  # one is still on its way to its change
    releases[1].set()
    urgent[1].join()
    waiter.join(2)
    assert not waiter.is_alive() and 0.2 <= out["waited"] < 2


def test_relax_ends_a_threads_urgency_before_its_block_does() -> None:
    precedence = Precedence()
    relaxed, done = threading.Event(), threading.Event()

    def execution() -> None:
        with precedence.urgent():
            precedence.relax()  # its change goes out now; the bookkeeping after it need not be waited for
            relaxed.set()
            done.wait(10)

    thread = threading.Thread(target=execution)
    thread.start()
    assert relaxed.wait(5)
    assert precedence.give_way() < 0.05
    done.set()
    thread.join()


def test_nothing_waits_longer_than_the_window() -> None:
    precedence = Precedence(window=0.3)
    release = threading.Event()
    stuck = _urgent_until(precedence, release, threading.Event())  # never reaches its change
    waited = precedence.give_way()
    assert 0.2 <= waited < 1.0
    assert precedence.give_way() < 0.05  # and it no longer counts once its window is over
    release.set()
    stuck.join()


def test_under_a_burst_the_worker_sends_every_change_before_the_bookkeeping_of_those_already_sent(
        tmp_path: Path) -> None:
    """The switch's change goes out at once and the code rollback's comes 0.3 s later (Vercel is
    slow to read): the switch's verification waits for the code rollback's change."""
    w = fake_world(tmp_path)
    order: list[str] = []
    code = w.request(ALICE, "code")
    switch = w.request(ALICE, "switch", name="checkout")
    code_reading = threading.Event()
    read_alias, rollback = w.vercel.alias_state, w.vercel.rollback

    def slow_read(project: str) -> Any:
        code_reading.set()
        time.sleep(0.3)
        return read_alias(project)

    def recorded_rollback(*args: Any, **kwargs: Any) -> Any:
        order.append("code: change")
        return rollback(*args, **kwargs)

    w.vercel.alias_state = slow_read  # type: ignore[method-assign]
    w.vercel.rollback = recorded_rollback  # type: ignore[method-assign]
    switch_kind = w.svc.kinds["switch"]
    switch_execute, verification = switch_kind.execute, w.notifier.verification

    def switch_after_code_started(plan: Any, run: Any) -> str:
        assert code_reading.wait(5)  # the code rollback is on its way to its change
        done = switch_execute(plan, run)
        order.append("switch: change")
        return done

    def recorded_verification(incident: Any, *args: Any) -> None:
        order.append(f"{incident.kind}: verified")
        verification(incident, *args)

    switch_kind.execute = switch_after_code_started  # type: ignore[method-assign]
    w.notifier.verification = recorded_verification  # type: ignore[method-assign]
    for incident in (code, switch):
        assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    leader = SimpleNamespace(acquire_leader=lambda name, ttl: True, release_leader=lambda name: None)
    container = SimpleNamespace(policy=w.svc.policy, redis=leader, services=w.svc, close=lambda: None)
    Worker(container, "w1", concurrency=4).run_once()  # type: ignore[arg-type]
    assert order.index("code: change") < order.index("switch: verified"), order
    assert sorted(order) == ["code: change", "code: verified", "switch: change", "switch: verified"]
