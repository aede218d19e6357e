"""The bot's own Postgres: the source of truth. Every decision is one atomic, conditional write."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg import ClientCursor, Connection
from psycopg.errors import UniqueViolation
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from handlers.kind import PART_SEPARATOR, PlanLoader, lock_names
from handlers.model import Incident, NewFollowUp, Resolution, Status, StepRun
from handlers.plans import PlanBase
from handlers.ports import ApprovalOutcome, LockHeld, NewIncident, NewJob
from handlers.summary import Summary
from integrations.pg_followups import FollowUpTables
from integrations.pg_rows import INCIDENT_FIELDS, incident_from_row, step_from_row
from integrations.pg_standing import StandingTables
from integrations.pg_work import JOBS_CHANNEL, STEPS_SQL, WorkTables

FRESH = 2.0  # seconds: a connection used this recently is handed out without a round trip


def _check_if_idle(conn: Connection[DictRow]) -> None:
    """Ping a connection that sat idle (a restart may have broken it) before handing it out;
    skip the round trip for one in steady use, which halves the round trips of a busy worker.
    Idle is measured from its last checkout, stamped here: a ``reset`` callback would stamp its
    return instead, but psycopg_pool then returns every connection through a worker thread."""
    now = time.monotonic()
    if now - getattr(conn, "_rollbot_used", 0.0) > FRESH:
        ConnectionPool.check_connection(conn)
    conn._rollbot_used = now  # type: ignore[attr-defined]


class PostgresStore(WorkTables, StandingTables, FollowUpTables):
    """Implements ``handlers.ports.IncidentStore`` on a psycopg connection pool."""

    def __init__(self, database_url: str, load_plan: PlanLoader, *, min_size: int = 1, max_size: int = 10,
                 wait: float = 5.0) -> None:
        self._load_plan = load_plan
        self.pool: ConnectionPool[Connection[DictRow]] = ConnectionPool(
            database_url, min_size=min_size, max_size=max_size, open=True, connection_class=Connection[DictRow],
            kwargs={"row_factory": dict_row, "autocommit": True}, name="rollbot",
            # A connection broken by a Postgres restart is replaced instead of failing a request.
            check=_check_if_idle,
            timeout=wait,  # seconds for a connection: fail fast (with a clear message) when Postgres is down
        )

    def close(self) -> None:
        self.pool.close()

    def ping(self) -> bool:
        with self.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    # -- incidents ---------------------------------------------------------------------------

    def create_incident(self, new: NewIncident) -> Incident:
        """Check the lock and insert in one transaction, serialised per environment by an
        advisory lock (so refused requests burn no RB number, and a combined kind's locks are
        checked against every other kind's on that environment); the partial unique index on
        (env, kind) stays the final guard."""
        locks = list(lock_names(new.kind))
        with self.pool.connection() as conn:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"incident:{new.env}",))
                    holder = self._lock_holder(conn, new.env, locks)
                    if holder is not None:
                        raise LockHeld(holder)
                    row = conn.execute(
                        """INSERT INTO incidents (kind, env, status, requester, reason, plan, plan_hash,
                               approvals_needed, checklist, created_at, expires_at, drill, issue, severity,
                               request_job)
                           VALUES (%s, %s, 'pending', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                        (new.kind, new.env, new.requester, new.reason, Jsonb(new.plan.to_json()), new.plan.hash,
                         new.approvals_needed, Jsonb(new.checklist), new.created_at, new.expires_at, new.drill,
                         new.issue, new.severity, new.request_job),
                    ).fetchone()
                    assert row is not None
                    self._insert_jobs(conn, row["id"], [NewJob("expire", new.expires_at, {"plan_hash": new.plan.hash})])
            except UniqueViolation:  # only reachable if something bypassed the advisory lock
                found = self._lock_holder(conn, new.env, locks)
                if found is None:
                    raise
                raise LockHeld(found) from None
            assert row is not None
            incident = self._get(conn, row["id"])
        assert incident is not None
        return incident

    def _lock_holder(self, conn: Connection[DictRow], env: str, locks: list[str]) -> Incident | None:
        """The pending or executing incident on ``env`` that holds one of ``locks``, if any."""
        holder = conn.execute(
            "SELECT id FROM incidents WHERE env = %s AND string_to_array(kind, %s) && %s::text[] "
            "AND status IN ('pending', 'executing') ORDER BY id LIMIT 1", (env, PART_SEPARATOR, locks),
        ).fetchone()
        return self._get(conn, holder["id"]) if holder else None

    def get(self, incident_id: int) -> Incident | None:
        with self.pool.connection() as conn:
            return self._get(conn, incident_id)

    def incident_for_request(self, request_job: int) -> Incident | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT id FROM incidents WHERE request_job = %s", (request_job,)).fetchone()
            return self._get(conn, row["id"]) if row else None

    def recent(self, limit: int, env: str | None = None) -> list[Incident]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM incidents WHERE %s::text IS NULL OR env = %s ORDER BY id DESC LIMIT %s",
                (env, env, limit),
            ).fetchall()
            return [i for r in rows if (i := self._get(conn, r["id"])) is not None]

    def incident_count(self, env: str | None = None) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT count(*) AS n FROM incidents WHERE %s::text IS NULL OR env = %s",
                               (env, env)).fetchone()
            return int(row["n"]) if row else 0

    def open_incidents(self) -> list[Incident]:
        """Two queries, however many are open (the status command and every upkeep read it)."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM incidents WHERE status IN ('pending', 'executing', 'monitoring') ORDER BY id"
            ).fetchall()
            approvals: dict[int, list[DictRow]] = {int(r["id"]): [] for r in rows}
            for a in conn.execute(
                    "SELECT incident_id, approver, plan_hash, at FROM approvals WHERE incident_id = ANY(%s) "
                    "ORDER BY at, approver", (list(approvals),)).fetchall():
                approvals[int(a["incident_id"])].append(a)
            return [incident_from_row(row, approvals[int(row["id"])], self._load_plan) for row in rows]

    def rolled_back_plans(self, env: str, limit: int = 100) -> list[PlanBase]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT plan FROM incidents WHERE env = %s AND rolled_back_at IS NOT NULL "
                                "ORDER BY rolled_back_at DESC LIMIT %s", (env, limit)).fetchall()
        return [self._load_plan(row["plan"]) for row in rows]

    def last_rolled_back(self, drill: bool = False) -> Incident | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT id FROM incidents WHERE rolled_back_at IS NOT NULL AND drill = %s "
                "ORDER BY rolled_back_at DESC LIMIT 1", (drill,)
            ).fetchone()
            return self._get(conn, row["id"]) if row else None

    def status_counts(self) -> dict[str, int]:
        """Incidents per status, the drills among them ("drill.<status>"), and due jobs given up
        on ("dead_jobs"), running ("running_jobs") and due now but not claimed ("due_jobs"), for
        /metrics."""
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT status, count(*) AS n, count(*) FILTER (WHERE drill) AS drills "
                                "FROM incidents GROUP BY status").fetchall()
            jobs = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'dead') AS dead, count(*) FILTER (WHERE status = 'running') "
                "AS running, count(*) FILTER (WHERE status = 'due' AND due_at <= now()) AS due FROM due_jobs "
                "WHERE status IN ('dead', 'running', 'due')").fetchone() or {}
            return {**{r["status"]: int(r["n"]) for r in rows},
                    **{f"drill.{r['status']}": int(r["drills"]) for r in rows if r["drills"]},
                    **{f"{state}_jobs": int(jobs.get(state) or 0) for state in ("dead", "running", "due")}}

    def set_refs(self, incident_id: int, **refs: str) -> None:
        self._update(incident_id, refs, None)

    def set_checklist(self, incident_id: int, key: str, checked: bool) -> Incident | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                """UPDATE incidents SET checklist = jsonb_set(checklist, ARRAY[%s], to_jsonb(%s::boolean))
                   WHERE id = %s AND checklist ? %s RETURNING id""",
                (key, checked, incident_id, key),
            ).fetchone()
            return self._get(conn, incident_id) if row else None

    def add_checklist(self, incident_id: int, keys: Sequence[str]) -> None:
        """Add unticked items (kept as they are when already present)."""
        with self.pool.connection() as conn:
            conn.execute("UPDATE incidents SET checklist = %s || checklist WHERE id = %s",
                         (Jsonb({key: False for key in keys}), incident_id))

    def reopen(self, incident_id: int, owner: str, old_hash: str, plan: PlanBase,
               expires_at: datetime) -> Incident | None:
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                """UPDATE incidents SET status = 'pending', plan = %s, plan_hash = %s, exec_owner = NULL,
                       exec_lease_until = NULL, decided_by = NULL, decided_at = NULL, expires_at = %s
                   WHERE id = %s AND status = 'executing' AND exec_owner = %s AND plan_hash = %s RETURNING id""",
                (Jsonb(plan.to_json()), plan.hash, expires_at, incident_id, owner, old_hash),
            ).fetchone()
            if row is None:
                return None
            self._insert_jobs(conn, incident_id, [NewJob("expire", expires_at, {"plan_hash": plan.hash})])
            return self._get(conn, incident_id)

    def transition(
        self, incident_id: int, from_status: Sequence[Status], to_status: Status, *, owner: str | None = None,
        **fields: Any
    ) -> Incident | None:
        return self._update(incident_id, {"status": to_status.value, **fields}, [s.value for s in from_status], owner)

    def mark_rolled_back(self, incident_id: int, owner: str, at: datetime) -> bool:
        with self.pool.connection() as conn:
            return conn.execute(
                """UPDATE incidents SET rolled_back_at = COALESCE(rolled_back_at, %s)
                   WHERE id = %s AND status = 'executing' AND exec_owner = %s RETURNING id""",
                (at, incident_id, owner),
            ).fetchone() is not None

    def start_monitoring(self, incident_id: int, owner: str, verified_at: datetime, checklist: Sequence[str],
                         jobs: Sequence[NewJob]) -> Incident | None:
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                """UPDATE incidents SET status = 'monitoring', verified_at = %s, checklist = %s || checklist
                   WHERE id = %s AND status = 'executing' AND exec_owner = %s RETURNING id""",
                (verified_at, Jsonb({key: False for key in checklist}), incident_id, owner),
            ).fetchone()
            if row is None:
                return None
            self._insert_jobs(conn, incident_id, jobs)
            return self._get(conn, incident_id)

    def orphaned_requests(self, older_than: datetime) -> list[int]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM incidents WHERE status = 'pending' AND root_ts IS NULL AND created_at < %s",
                (older_than,),
            ).fetchall()
            return [r["id"] for r in rows]

    def _update(self, incident_id: int, fields: dict[str, Any], from_status: list[str] | None,
                owner: str | None = None) -> Incident | None:
        unknown = set(fields) - INCIDENT_FIELDS - {"status"}
        if unknown:
            raise ValueError(f"not incident fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = %s" for name in fields)
        params: list[Any] = list(fields.values()) + [incident_id]
        where = "id = %s"
        if from_status is not None:
            where += " AND status = ANY(%s)"
            params.append(from_status)
        if owner is not None:
            where += " AND exec_owner = %s"
            params.append(owner)
        with self.pool.connection() as conn:
            row = conn.execute(f"UPDATE incidents SET {assignments} WHERE {where} RETURNING id", params).fetchone()
            return self._get(conn, incident_id) if row else None

    def approve(self, incident_id: int, approver: str, plan_hash: str, at: datetime,
                required: Sequence[str] = (), announce: NewJob | None = None) -> ApprovalOutcome:
        """Lock the incident; record the approval if the incident is pending, on this plan, not
        expired, and every ``required`` checklist item is ticked; on the quorum, move it to
        EXECUTING, queue its ``execute`` job and cancel its expiry; queue ``announce`` with a
        recorded approval (never without), and wake the workers. All of it in the database
        function ``rollbot_approve`` (migration 0011), then the incident as it now is: one round
        trip, one transaction, since the click waits on it before its ack."""
        with self.pool.connection() as conn, ClientCursor(conn, row_factory=dict_row) as cur:
            # Several statements in one simple query: one round trip and one implicit transaction.
            cur.execute("SELECT * FROM rollbot_approve(%s, %s, %s, %s, %s, %s, %s, %s, %s); " + _INCIDENT_SQL, (
                incident_id, approver, plan_hash, at, list(required),
                announce.kind if announce else None, announce.due_at if announce else None,
                Jsonb(announce.payload) if announce else None, JOBS_CHANNEL, incident_id, incident_id))
            outcome = cur.fetchone()
            cur.nextset()
            incident = self._incident_from_sets(cur)
        if incident is None or outcome is None:
            raise KeyError(incident_id)
        return ApprovalOutcome(incident, bool(outcome["recorded"]), bool(outcome["decided"]))

    # -- execution lease (on the database's clock: no skew between hosts) ---------------------

    def claim_execution(self, incident_id: int, owner: str, lease: timedelta) -> bool:
        """Take the lease of an EXECUTING incident nobody holds, or whose lease ran out. A due
        ``execute`` job of the incident is moot from then on (a lease that runs out again is
        taken over by ``stale_executions``), so it is cancelled in the same transaction."""
        with self.pool.connection() as conn, conn.transaction():
            claimed = conn.execute(
                """UPDATE incidents SET exec_owner = %s, exec_lease_until = now() + %s
                   WHERE id = %s AND status = 'executing' AND (exec_lease_until IS NULL OR exec_lease_until < now())
                   RETURNING id""",
                (owner, lease, incident_id),
            ).fetchone() is not None
            if claimed:
                conn.execute("UPDATE due_jobs SET status = 'cancelled', outcome = 'claimed directly' "
                             "WHERE incident_id = %s AND kind = 'execute' AND status = 'due'", (incident_id,))
            return claimed

    def renew_execution(self, incident_id: int, owner: str, lease: timedelta) -> bool:
        """Extend our lease; False when another executor has taken it over."""
        with self.pool.connection() as conn:
            return conn.execute(
                """UPDATE incidents SET exec_lease_until = GREATEST(exec_lease_until, now() + %s)
                   WHERE id = %s AND status = 'executing' AND exec_owner = %s RETURNING id""",
                (lease, incident_id, owner),
            ).fetchone() is not None

    def stale_executions(self) -> list[int]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                """SELECT id FROM incidents WHERE status = 'executing'
                   AND exec_lease_until < now() ORDER BY id"""
            ).fetchall()
            return [r["id"] for r in rows]

    def resolve(self, incident_id: int, resolution: Resolution, summary: Summary, status: Status,
                finished_at: datetime, follow_ups: Sequence[NewFollowUp] = ()) -> Incident | None:
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                """UPDATE incidents SET status = %s, resolved_by = %s, resolved_at = %s, root_cause = %s,
                       lessons = %s, summary = %s, finished_at = %s
                   WHERE id = %s AND resolved_at IS NULL AND status IN ('monitoring', 'failed') RETURNING id""",
                (status.value, resolution.resolved_by, resolution.at, resolution.root_cause, resolution.lessons,
                 Jsonb(summary.to_json()), finished_at, incident_id),
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE due_jobs SET status = 'cancelled' WHERE incident_id = %s AND kind = 'monitor'"
                         " AND status = 'due'", (incident_id,))
            self._insert_jobs(conn, incident_id, [NewJob("post_summary", resolution.at, {})])
            self._insert_follow_ups(conn, incident_id, follow_ups, resolution.at)
            return self._get(conn, incident_id)

    def summary(self, incident_id: int) -> Summary | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT summary FROM incidents WHERE id = %s", (incident_id,)).fetchone()
        if row is None or row["summary"] is None:
            return None
        try:
            return Summary.model_validate(row["summary"])
        except ValidationError as error:
            raise ValueError(f"the stored summary of RB-{incident_id} is malformed ({error.error_count()} "
                             "problems); rebuild it with `rollbot report`") from None

    def _get(self, conn: Connection[DictRow], incident_id: int) -> Incident | None:
        with ClientCursor(conn, row_factory=dict_row) as cur:  # both queries in one round trip
            cur.execute(_INCIDENT_SQL, (incident_id, incident_id))
            return self._incident_from_sets(cur)

    def incident_with_steps(self, incident_id: int) -> tuple[Incident, list[StepRun]] | None:
        with self.pool.connection() as conn, ClientCursor(conn, row_factory=dict_row) as cur:
            cur.execute(_INCIDENT_SQL + "; " + STEPS_SQL,
                        (incident_id, incident_id, incident_id))
            incident = self._incident_from_sets(cur)
            cur.nextset()
            return None if incident is None else (incident, [step_from_row(r) for r in cur.fetchall()])

    def _incident_from_sets(self, cur: ClientCursor[DictRow]) -> Incident | None:
        """The incident and its approvals from the current result set of ``cur`` and the next
        (``_INCIDENT_SQL``'s two statements)."""
        row = cur.fetchone()
        cur.nextset()
        return None if row is None else incident_from_row(row, cur.fetchall(), self._load_plan)


# An incident and its approvals, as two statements of one simple query (psycopg's ClientCursor):
# one round trip at half the client CPU of a pipeline, which matters on a click's path.
_INCIDENT_SQL = ("SELECT * FROM incidents WHERE id = %s; "
                 "SELECT approver, plan_hash, at FROM approvals WHERE incident_id = %s ORDER BY at, approver")


def thread_refs_from(store: PostgresStore, incident_id: int) -> dict[str, str] | None:
    """Rebuild an incident's live Slack refs from Postgres (used when Redis has nothing)."""
    incident = store.get(incident_id)
    if incident is None or not incident.channel:
        return None
    refs = {"channel": incident.channel, "root_ts": incident.root_ts or "", "progress_ts": incident.progress_ts or ""}
    return {k: v for k, v in refs.items() if v}
