"""The click's approval is recorded before the ack; its redraw and the approver's note are the
worker's ``announce`` job (handlers.approvals), so the web process does nothing slow for a click."""

from __future__ import annotations

from pathlib import Path

from handlers import approvals, monitoring
from handlers.store import DueJob
from tests.fakes.world import CAROL, FakeWorld, fake_world


def _announce_jobs(w: FakeWorld) -> list[DueJob]:
    return [j for j in w.store.claim_due(w.clock.now(), "w1") if j.kind == approvals.ANNOUNCE_JOB]


def test_a_non_deciding_approval_is_drawn_and_the_approver_told_by_the_worker(tmp_path: Path) -> None:
    w = fake_world(tmp_path, approvals=2)
    incident = w.request()
    redraws = w.notifier.count("refresh")
    approvals.record(w.svc, CAROL, incident.id, incident.plan_hash, announce_in="C0CLICKED")
    assert w.notifier.count("refresh") == redraws and "tell" not in w.notifier.sent  # nothing until the worker
    [job] = _announce_jobs(w)
    assert job.incident_id == incident.id and job.payload == {"user": CAROL, "channel": "C0CLICKED", "decided": False}
    assert monitoring.process(w.svc, job) == "announced"
    assert w.notifier.count("refresh") > redraws
    assert w.notifier.sent["tell"] == [(CAROL, f"Approval recorded (1 of 2) for {incident.ref}.")]


def test_the_deciding_approval_is_drawn_without_a_note(tmp_path: Path) -> None:
    w = fake_world(tmp_path)
    incident = w.request()
    assert approvals.record(w.svc, CAROL, incident.id, incident.plan_hash, announce_in="C0CLICKED").decided
    [job] = _announce_jobs(w)
    redraws = w.notifier.count("refresh")
    assert monitoring.process(w.svc, job) == "announced"
    assert w.notifier.count("refresh") > redraws and "tell" not in w.notifier.sent


def test_a_job_stopped_by_a_passing_outage_is_retried_with_one_line_and_no_traceback(
        tmp_path: Path, monkeypatch, caplog) -> None:  # noqa: ANN001
    """The database restarting under a job is expected: one warning and a retry; a defect keeps
    its traceback."""
    import logging

    w = fake_world(tmp_path)
    incident = w.request()
    approvals.record(w.svc, CAROL, incident.id, incident.plan_hash, announce_in="C0CLICKED")
    [job] = _announce_jobs(w)

    def restarting(*args: object) -> None:
        raise ConnectionError("the database system is shutting down")

    for read in ("get", "incident_with_steps"):  # every read the redraw could make
        monkeypatch.setattr(w.store, read, restarting)
    caplog.set_level(logging.WARNING)
    assert monitoring.process(w.svc, job, passing=lambda error: isinstance(error, ConnectionError)) == "retry"
    [record] = [r for r in caplog.records if "could not run now" in r.getMessage()]
    assert record.exc_info is None and "ConnectionError" in record.getMessage()
    caplog.clear()
    assert monitoring.process(w.svc, job) == "retry"  # not known to pass: logged in full
    assert any(r.exc_info for r in caplog.records)
