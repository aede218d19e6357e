"""Provider calls first (handlers.precedence): what gives way, to what, and for how long; and the
worker's order under a burst, on the fakes."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bot.worker import Worker
from handlers import approvals, monitoring
from handlers.execution import execute, verify
from handlers.model import Status
from handlers.ports import ProviderError
from handlers.precedence import Precedence
from handlers.progress import ProgressUpdates
from handlers.services import Refused
from tests.fakes.world import ALICE, CAROL, fake_world


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, float]]:
    out: dict[str, float] = {}

    def run() -> None:
        out["waited"] = fn()
        out["done_at"] = time.monotonic()

    thread = threading.Thread(target=run)
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
    released_at = time.monotonic()
    releases[1].set()
    urgent[1].join()
    waiter.join(2)
    assert not waiter.is_alive() and released_at <= out["done_at"] < released_at + 2


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


def _worker(w: Any, concurrency: int = 4) -> Worker:
    leader = SimpleNamespace(acquire_leader=lambda name, ttl: True, release_leader=lambda name: None)
    container = SimpleNamespace(policy=w.svc.policy, redis=leader, services=w.svc, close=lambda: None)
    return Worker(container, "w1", concurrency=concurrency)  # type: ignore[arg-type]


def test_under_a_burst_the_worker_sends_every_change_before_the_bookkeeping_of_those_already_sent(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The code rollback is on its way to its change (Vercel is slow to read) when the switch is
    approved: the switch's change goes out at once, but its approval note (a job) and its
    read-back wait until the code rollback's change goes out."""
    w = fake_world(tmp_path)
    order: list[str] = []
    code = w.request(ALICE, "code")
    switch = w.request(ALICE, "switch", name="checkout")
    code_reading, release_code = threading.Event(), threading.Event()
    read_alias = w.vercel.alias_state

    def slow_read(project: str) -> Any:
        code_reading.set()
        assert release_code.wait(10)
        return read_alias(project)

    w.vercel.alias_state = slow_read  # type: ignore[method-assign]
    code_kind, switch_kind = w.svc.kinds["code"], w.svc.kinds["switch"]
    code_execute, switch_execute, verification = code_kind.execute, switch_kind.execute, w.notifier.verification

    def code_recorded(plan: Any, run: Any) -> str:
        hold = run.hold

        def recorded_hold() -> None:
            order.append("code: change goes out")  # before hold(): nothing can pass it first
            hold()

        run.hold = recorded_hold
        return code_execute(plan, run)

    def switch_recorded(plan: Any, run: Any) -> str:
        done = switch_execute(plan, run)
        order.append("switch: change")
        return done

    def recorded_verification(incident: Any, *args: Any) -> None:
        order.append(f"{incident.kind}: verified")
        verification(incident, *args)

    process = monitoring.process

    def recorded_process(svc: Any, job: Any, *args: Any) -> str:
        if job.kind != "execute":
            order.append(f"{'code' if job.incident_id == code.id else 'switch'}: {job.kind} job")
        return process(svc, job, *args)

    code_kind.execute = code_recorded  # type: ignore[method-assign]
    switch_kind.execute = switch_recorded  # type: ignore[method-assign]
    w.notifier.verification = recorded_verification  # type: ignore[method-assign]
    monkeypatch.setattr(monitoring, "process", recorded_process)
    worker = _worker(w)
    assert approvals.record(w.svc, CAROL, code.id, code.plan_hash, announce_in="C01INCIDENTS").decided
    worker.dispatch()
    assert code_reading.wait(5)  # the code rollback is urgent now
    assert approvals.record(w.svc, CAROL, switch.id, switch.plan_hash, announce_in="C01INCIDENTS").decided
    worker.dispatch()
    deadline = time.monotonic() + 5
    while "switch: change" not in order and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert "switch: change" in order and "switch: verified" not in order and "switch: announce job" not in order
    release_code.set()
    worker.run_once()
    assert order.index("code: change goes out") < order.index("switch: announce job"), order
    assert order.index("code: change goes out") < order.index("switch: verified"), order
    assert {"code: verified", "switch: verified"} <= set(order)


def test_an_execution_that_fails_before_its_change_holds_nothing_up(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    w.svc.precedence = Precedence(window=30)  # so a leftover urgency would show as a long wait
    incident = w.request(ALICE, "code")
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided

    waits: list[float] = []

    def broken(project: str) -> Any:
        if any(e.outcome == "error" for e in w.store.audit_log(incident.id)):  # the read-back after the error
            waiter, out = _in_thread(w.svc.precedence.give_way)
            waiter.join(10)
            waits.append(out.get("waited", 99.0))
        raise ProviderError("Vercel answered 403")

    w.vercel.alias_state = broken  # type: ignore[method-assign]
    started = time.monotonic()
    assert execute(w.svc, incident.id).status is Status.FAILED
    assert waits and max(waits) < 1  # reading the provider back after the error held nothing up
    assert time.monotonic() - started < 10  # its own progress redraws did not wait for it
    waiter, out = _in_thread(w.svc.precedence.give_way)
    waiter.join(10)
    assert out["waited"] < 1


def test_once_an_executions_change_goes_out_nothing_waits_for_it(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    w.svc.precedence = Precedence(window=30)
    incident = w.request(ALICE, "code")
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    rollback = w.vercel.rollback
    waits: list[float] = []

    def sent(*args: Any, **kwargs: Any) -> Any:  # the change, right after the lease is renewed for it
        waiter, out = _in_thread(w.svc.precedence.give_way)
        waiter.join(10)
        waits.append(out.get("waited", 99.0))
        return rollback(*args, **kwargs)

    w.vercel.rollback = sent  # type: ignore[method-assign]
    assert execute(w.svc, incident.id).status is Status.MONITORING
    assert len(waits) == 1 and waits[0] < 1


def test_an_execution_runs_while_every_job_slot_is_taken(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    worker = _worker(w, concurrency=1)
    busy = threading.Event()
    worker._submit(busy.wait, 10)  # a slow job holds the one job slot
    incident = w.request(ALICE, "code")
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    assert worker.dispatch() == 1  # the execution (its approval note waits for a job slot)
    deadline = time.monotonic() + 10
    while w.store.get(incident.id).status is not Status.MONITORING and time.monotonic() < deadline:
        time.sleep(0.02)
    assert w.store.get(incident.id).status is Status.MONITORING
    busy.set()
    worker.run_once()


def test_a_plan_that_no_longer_holds_fails_without_holding_anything_up(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    w.svc.precedence = Precedence(window=30)
    incident = w.request(ALICE, "code")
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided

    def gone(plan: Any, env: Any) -> Any:
        raise Refused("no earlier deployment is ready any more")

    w.svc.kinds["code"].replan = gone  # type: ignore[method-assign]
    failure, waits = w.notifier.failure, []

    def posted(*args: Any) -> None:  # the failure note, posted from the execution's own thread
        waiter, out = _in_thread(w.svc.precedence.give_way)
        waiter.join(10)
        waits.append(out.get("waited", 99.0))
        failure(*args)

    w.notifier.failure = posted  # type: ignore[method-assign]
    assert execute(w.svc, incident.id).status is Status.FAILED
    assert len(waits) == 1 and waits[0] < 1


def test_a_progress_redraw_waits_for_an_execution_on_its_way_to_its_change(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    incident = w.request(ALICE, "code")
    release, entered = threading.Event(), threading.Event()
    urgent = _urgent_until(w.svc.precedence, release, entered)
    updates = ProgressUpdates(w.svc, incident.id)
    updates.poke()
    time.sleep(0.2)
    assert w.notifier.count("progress") == 0
    release.set()
    urgent.join()
    updates.close()
    assert w.notifier.count("progress") == 1


def test_a_read_back_waits_for_an_execution_on_its_way_to_its_change(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    incident = w.request(ALICE, "code")
    assert approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash).decided
    assert w.store.claim_execution(incident.id, "A", timedelta(minutes=5))
    w.vercel.rollback(incident.plan.project, incident.plan.to_deployment.uid, "the change, made")
    assert w.store.mark_rolled_back(incident.id, "A", w.clock.now())
    release, entered = threading.Event(), threading.Event()
    urgent = _urgent_until(w.svc.precedence, release, entered)
    reading = threading.Thread(target=verify, args=(w.svc, incident.id, "A"))
    reading.start()
    time.sleep(0.2)
    assert w.store.get(incident.id).status is Status.EXECUTING and not w.notifier.count("verification")
    release.set()
    urgent.join()
    reading.join(10)
    assert w.store.get(incident.id).status is Status.MONITORING
