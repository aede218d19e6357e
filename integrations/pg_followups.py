"""The follow-ups of resolved incidents and their DM reminders, on Postgres.

A base of ``PostgresStore`` (which holds the pool); the resolving transaction writes the rows
through ``_insert_follow_ups``. Scheduling the next reminder and marking one done are
conditional updates, so each happens once however many runners try.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from handlers.model import FollowUp, NewFollowUp
from handlers.store import FOLLOW_UP_JOB, NewJob
from integrations.pg_work import WorkTables


def _follow_up(row: dict[str, Any]) -> FollowUp:
    return FollowUp(id=row["id"], incident_id=row["incident_id"], category=row["category"], text=row["text"],
                    owner=row["owner"], created_at=row["created_at"], rounds=row["rounds"], done_by=row["done_by"],
                    done_at=row["done_at"])


class FollowUpTables:
    pool: ConnectionPool[Connection[DictRow]]

    def _insert_follow_ups(self, conn: Connection[DictRow], incident_id: int, follow_ups: Sequence[NewFollowUp],
                           at: datetime) -> None:
        """Within the resolving transaction: the rows and each one's first reminder, due now."""
        jobs = []
        for position, item in enumerate(follow_ups):
            row = conn.execute(
                """INSERT INTO follow_ups (incident_id, position, category, text, owner, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
                (incident_id, position, item.category, item.text, item.owner, at),
            ).fetchone()
            assert row is not None
            jobs.append(NewJob(FOLLOW_UP_JOB, at, {"follow_up": row["id"], "round": 1}))
        WorkTables._insert_jobs(conn, incident_id, jobs)

    def follow_ups(self, incident_id: int) -> list[FollowUp]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT * FROM follow_ups WHERE incident_id = %s ORDER BY position",
                                (incident_id,)).fetchall()
        return [_follow_up(r) for r in rows]

    def follow_up(self, follow_up_id: int) -> FollowUp | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT * FROM follow_ups WHERE id = %s", (follow_up_id,)).fetchone()
        return _follow_up(row) if row else None

    def next_follow_up_reminder(self, follow_up_id: int, after_round: int, due_at: datetime) -> bool:
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                """UPDATE follow_ups SET rounds = rounds + 1
                   WHERE id = %s AND rounds = %s AND done_at IS NULL RETURNING incident_id""",
                (follow_up_id, after_round),
            ).fetchone()
            if row is None:
                return False
            WorkTables._insert_jobs(conn, row["incident_id"],
                              [NewJob(FOLLOW_UP_JOB, due_at, {"follow_up": follow_up_id, "round": after_round + 1})])
            return True

    def follow_up_done(self, follow_up_id: int, by: str, at: datetime) -> FollowUp | None:
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                """UPDATE follow_ups SET done_by = %s, done_at = %s
                   WHERE id = %s AND done_at IS NULL RETURNING *""",
                (by, at, follow_up_id),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                """UPDATE due_jobs SET status = 'cancelled'
                   WHERE incident_id = %s AND kind = %s AND status = 'due' AND payload->>'follow_up' = %s""",
                (row["incident_id"], FOLLOW_UP_JOB, str(follow_up_id)),
            )
            return _follow_up(row)
