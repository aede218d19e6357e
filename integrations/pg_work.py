"""Steps, the audit log and due work: the tables the incident flow writes as it goes.

A base of ``PostgresStore`` (which holds the pool); split out so each module stays one idea.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from handlers.model import StepRun
from handlers.ports import AuditEntry, DueJob, MessageRecord, NewJob
from handlers.store import MESSAGE_IN_FLIGHT, STEP_STALE, claim_order
from integrations.pg_rows import audit_from_row, job_from_row, step_from_row


def _storable(value: Any) -> Any:
    """Postgres text and jsonb refuse NUL: an audited string keeps a visible U+FFFD instead, so a
    refusal of bad input is recorded rather than lost."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


JOB_LEASE = timedelta(minutes=5)
JOBS_CHANNEL = "rollbot_jobs"  # NOTIFY channel: due work was written
MAX_JOB_ATTEMPTS = 50  # with backoff capped at 10 minutes: hours of retries before a job is dead


STEPS_SQL = "SELECT * FROM step_runs WHERE incident_id = %s ORDER BY started_at, name"
"""An incident's steps, in the order they started (``WorkTables.steps``, ``incident_with_steps``)."""

# Claiming due jobs: the dead-marking of rows whose lease ran out on their last attempt, the
# claim of the rest (``ready``: ids locked with SKIP LOCKED) and the claimed rows read back.
_DEAD = """WITH dead AS (
       UPDATE due_jobs SET status = 'dead', outcome = 'too many attempts'
       WHERE status = 'running' AND lease_until < %(now)s AND attempts >= %(max)s),"""
_DUE = """((status = 'due' AND due_at <= %(now)s)
          OR (status = 'running' AND lease_until < %(now)s AND attempts < %(max)s))"""
_CLAIMED = """
   UPDATE due_jobs j SET status = 'running', claimed_by = %(worker)s, attempts = j.attempts + 1,
       lease_until = %(lease)s
   FROM ready WHERE j.id = ready.id
   RETURNING j.*, (SELECT i.kind FROM incidents i WHERE i.id = j.incident_id) AS incident_kind,
             (SELECT i.env FROM incidents i WHERE i.id = j.incident_id) AS incident_env"""
CLAIM_SQL = _DEAD + """
   ready AS (
       SELECT id FROM due_jobs WHERE """ + _DUE + """
       ORDER BY kind <> 'execute', due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)""" + _CLAIMED
CLAIM_APART_SQL = _DEAD + """
   executions AS (
       SELECT id FROM due_jobs WHERE kind = 'execute' AND """ + _DUE + """
       ORDER BY due_at LIMIT %(executions)s FOR UPDATE SKIP LOCKED),
   others AS (
       SELECT id FROM due_jobs WHERE kind <> 'execute' AND """ + _DUE + """
       ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED),
   ready AS (SELECT id FROM executions UNION ALL SELECT id FROM others)""" + _CLAIMED


class WorkTables:
    pool: ConnectionPool[Connection[DictRow]]

    # -- steps -------------------------------------------------------------------------------

    def start_step(self, incident_id: int, name: str, at: datetime) -> bool:
        with self.pool.connection() as conn:
            return conn.execute(
                """INSERT INTO step_runs (incident_id, name, status, started_at) VALUES (%s, %s, 'running', %s)
                   ON CONFLICT DO NOTHING RETURNING 1""",
                (incident_id, name, at),
            ).fetchone() is not None

    def restart_step(self, incident_id: int, name: str, at: datetime) -> bool:
        with self.pool.connection() as conn:
            return conn.execute(
                """UPDATE step_runs SET status = 'running', started_at = %s, finished_at = NULL
                   WHERE incident_id = %s AND name = %s
                     AND (status IN ('failed', 'uncertain') OR (status = 'running' AND started_at < %s))
                   RETURNING 1""",
                (at, incident_id, name, at - STEP_STALE),
            ).fetchone() is not None

    def finish_step(self, incident_id: int, name: str, status: str, detail: str, at: datetime) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE step_runs SET status = %s, detail = %s, finished_at = %s WHERE incident_id = %s AND name = %s",
                (status, detail, at, incident_id, name),
            )

    def note_step(self, incident_id: int, name: str, detail: str) -> None:
        with self.pool.connection() as conn:
            conn.execute("UPDATE step_runs SET detail = %s WHERE incident_id = %s AND name = %s AND status = 'running'",
                         (detail, incident_id, name))

    # -- the Slack message ledger --------------------------------------------------------------

    def begin_message(self, incident_id: int, key: str, at: datetime) -> MessageRecord:
        with self.pool.connection() as conn, conn.transaction():
            if conn.execute(
                """INSERT INTO slack_messages (incident_id, key, state, first_attempt_at, claimed_at)
                   VALUES (%s, %s, 'posting', %s, %s) ON CONFLICT DO NOTHING RETURNING 1""",
                (incident_id, key, at, at),
            ).fetchone():
                return MessageRecord("new", since=at)
            before = conn.execute(
                "SELECT state, ts, first_attempt_at, claimed_at FROM slack_messages "
                "WHERE incident_id = %s AND key = %s FOR UPDATE", (incident_id, key)).fetchone()
            if before is None:  # deleted (refused) between the two statements: try again next time
                return MessageRecord("busy", since=at)
            since = before["first_attempt_at"]
            if before["state"] == "posted":
                return MessageRecord("posted", before["ts"], since)
            if before["claimed_at"] is not None and before["claimed_at"] > at - MESSAGE_IN_FLIGHT:
                return MessageRecord("busy", since=since)
            conn.execute("UPDATE slack_messages SET claimed_at = %s WHERE incident_id = %s AND key = %s",
                         (at, incident_id, key))
            return MessageRecord("doubt", since=since)

    def message_posted(self, incident_id: int, key: str, ts: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                """INSERT INTO slack_messages (incident_id, key, state, ts, first_attempt_at)
                   VALUES (%s, %s, 'posted', %s, now())
                   ON CONFLICT (incident_id, key) DO UPDATE SET state = 'posted', ts = EXCLUDED.ts, claimed_at = NULL""",
                (incident_id, key, ts))

    def message_unsettled(self, incident_id: int, key: str) -> None:
        with self.pool.connection() as conn:
            conn.execute("UPDATE slack_messages SET claimed_at = NULL WHERE incident_id = %s AND key = %s "
                         "AND state = 'posting'", (incident_id, key))

    def message_not_posted(self, incident_id: int, key: str) -> None:
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM slack_messages WHERE incident_id = %s AND key = %s AND state = 'posting'",
                         (incident_id, key))

    def steps(self, incident_id: int) -> list[StepRun]:
        with self.pool.connection() as conn:
            rows = conn.execute(STEPS_SQL, (incident_id,)).fetchall()
            return [step_from_row(r) for r in rows]

    # -- audit -------------------------------------------------------------------------------

    def audit(self, incident_id: int | None, actor: str, action: str, outcome: str, detail: dict[str, Any],
              at: datetime) -> None:
        with self.pool.connection() as conn:
            self._audit(conn, incident_id, actor, action, outcome, at, **detail)

    @staticmethod
    def _audit(conn: Connection[DictRow], incident_id: int | None, actor: str, action: str, outcome: str,
               at: datetime, **detail: Any) -> None:
        conn.execute(
            "INSERT INTO audit_log (at, incident_id, actor, action, outcome, detail) VALUES (%s, %s, %s, %s, %s, %s)",
            (at, incident_id, actor, action, outcome, Jsonb(_storable(detail))),
        )

    @staticmethod
    def _insert_jobs(conn: Connection[DictRow], incident_id: int | None, jobs: Sequence[NewJob]) -> None:
        """Insert due jobs and wake the workers (NOTIFY is delivered when the transaction commits)."""
        if jobs:  # one statement: one round trip, and atomic on its own
            conn.execute("WITH inserted AS (INSERT INTO due_jobs (incident_id, kind, due_at, payload) VALUES "
                         + ", ".join(["(%s, %s, %s, %s)"] * len(jobs)) + " RETURNING 1) SELECT pg_notify(%s, %s)",
                         [value for job in jobs for value in (incident_id, job.kind, job.due_at, Jsonb(job.payload))]
                         + [JOBS_CHANNEL, ",".join(sorted({j.kind for j in jobs}))])

    def audit_log(self, incident_id: int) -> list[AuditEntry]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT * FROM audit_log WHERE incident_id = %s ORDER BY id", (incident_id,)).fetchall()
            return [audit_from_row(r) for r in rows]

    # -- due work ----------------------------------------------------------------------------

    def schedule(self, incident_id: int | None, kind: str, due_at: datetime, payload: dict[str, Any]) -> None:
        with self.pool.connection() as conn:  # autocommit: the job and its NOTIFY are one statement
            self._insert_jobs(conn, incident_id, [NewJob(kind, due_at, payload)])

    def claim_due(self, now: datetime, worker: str, limit: int = 20, executions: int | None = None) -> list[DueJob]:
        """Claim due rows (and rows whose lease ran out after a crash) without blocking other
        workers; a row whose lease ran out on its last attempt is marked dead instead. One
        statement (one round trip, atomic on its own): the worker claims on every wake-up."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                CLAIM_SQL if executions is None else CLAIM_APART_SQL,
                {"now": now, "limit": limit, "executions": executions, "worker": worker, "lease": now + JOB_LEASE,
                 "max": MAX_JOB_ATTEMPTS},
            ).fetchall()
        return sorted((job_from_row(r) for r in rows), key=claim_order)

    def finish_job(self, job_id: int, outcome: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE due_jobs SET status = 'done', outcome = %s, finished_at = now() WHERE id = %s",
                (outcome, job_id),
            )

    def retry_job(self, job_id: int, due_at: datetime, outcome: str) -> None:
        """Put a failed job back, due again at ``due_at``; dead after MAX_JOB_ATTEMPTS."""
        with self.pool.connection() as conn:
            conn.execute(
                """UPDATE due_jobs SET status = CASE WHEN attempts >= %s THEN 'dead' ELSE 'due' END,
                       due_at = %s, outcome = %s, lease_until = NULL
                   WHERE id = %s""",
                (MAX_JOB_ATTEMPTS, due_at, outcome, job_id),
            )

    def cancel_jobs(self, incident_id: int, kind: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE due_jobs SET status = 'cancelled' WHERE incident_id = %s AND kind = %s AND status = 'due'",
                (incident_id, kind),
            )

    def pending_jobs(self, incident_id: int) -> list[DueJob]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM due_jobs WHERE incident_id = %s AND status = 'due' ORDER BY due_at", (incident_id,)
            ).fetchall()
            return [job_from_row(r) for r in rows]
