"""The ledger of the standing reminders (``handlers.store.Standing``): the messages about no
incident, the drill and review reminders, each claimed once like an incident's messages.

A base of ``PostgresStore`` (which holds the pool).
"""

from __future__ import annotations

from datetime import datetime

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from handlers.store import MESSAGE_IN_FLIGHT, MessageRecord, StandingRecord


class StandingTables:
    pool: ConnectionPool[Connection[DictRow]]

    def last_standing(self, series: str) -> StandingRecord | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT seq, state, first_attempt_at, posted_at FROM standing_messages "
                               "WHERE series = %s ORDER BY seq DESC LIMIT 1", (series,)).fetchone()
            return (StandingRecord(int(row["seq"]), row["state"], row["first_attempt_at"], row["posted_at"])
                    if row else None)

    def begin_standing(self, series: str, seq: int, at: datetime) -> MessageRecord:
        with self.pool.connection() as conn, conn.transaction():
            if conn.execute(
                """INSERT INTO standing_messages (series, seq, state, first_attempt_at, claimed_at)
                   VALUES (%s, %s, 'posting', %s, %s) ON CONFLICT DO NOTHING RETURNING 1""",
                (series, seq, at, at),
            ).fetchone():
                return MessageRecord("new", since=at)
            before = conn.execute("SELECT state, ts, first_attempt_at, claimed_at FROM standing_messages "
                                  "WHERE series = %s AND seq = %s FOR UPDATE", (series, seq)).fetchone()
            if before is None:  # deleted (refused) between the two statements: try again next time
                return MessageRecord("busy", since=at)
            since = before["first_attempt_at"]
            if before["state"] == "posted":
                return MessageRecord("posted", before["ts"], since)
            if before["claimed_at"] is not None and before["claimed_at"] > at - MESSAGE_IN_FLIGHT:
                return MessageRecord("busy", since=since)
            conn.execute("UPDATE standing_messages SET claimed_at = %s WHERE series = %s AND seq = %s",
                         (at, series, seq))
            return MessageRecord("doubt", since=since)

    def standing_posted(self, series: str, seq: int, ts: str, at: datetime) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                """INSERT INTO standing_messages (series, seq, state, ts, first_attempt_at, posted_at)
                   VALUES (%s, %s, 'posted', %s, %s, %s)
                   ON CONFLICT (series, seq) DO UPDATE SET state = 'posted', ts = EXCLUDED.ts, claimed_at = NULL,
                       posted_at = COALESCE(standing_messages.posted_at, EXCLUDED.posted_at)""",
                (series, seq, ts, at, at))

    def standing_unsettled(self, series: str, seq: int) -> None:
        with self.pool.connection() as conn:
            conn.execute("UPDATE standing_messages SET claimed_at = NULL WHERE series = %s AND seq = %s "
                         "AND state = 'posting'", (series, seq))

    def standing_not_posted(self, series: str, seq: int) -> None:
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM standing_messages WHERE series = %s AND seq = %s AND state = 'posting'",
                         (series, seq))
