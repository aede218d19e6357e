"""The in-memory ledger of the standing reminders (``handlers.store.Standing``), a base of
``FakeStore``: the same claims as the Postgres one (the contract tests run against both)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from handlers.clock import Clock
from handlers.store import MESSAGE_IN_FLIGHT, MessageRecord, StandingRecord


class FakeStandingTables:
    clock: Clock
    lock: threading.RLock
    standing: dict[tuple[str, int], dict[str, Any]]  # FakeStore's field: the ledger's rows

    def last_standing(self, series: str) -> StandingRecord | None:
        with self.lock:
            mine = sorted(seq for s, seq in self.standing if s == series)
            if not mine:
                return None
            row = self.standing[(series, mine[-1])]
            return StandingRecord(mine[-1], row["state"], row["since"], row.get("posted_at"))

    def begin_standing(self, series: str, seq: int, at: datetime) -> MessageRecord:
        with self.lock:
            row = self.standing.get((series, seq))
            if row is None:
                self.standing[(series, seq)] = {"state": "posting", "ts": None, "since": at, "claimed": at}
                return MessageRecord("new", since=at)
            if row["state"] == "posted":
                return MessageRecord("posted", row["ts"], row["since"])
            if row["claimed"] is not None and row["claimed"] > at - MESSAGE_IN_FLIGHT:
                return MessageRecord("busy", since=row["since"])
            row["claimed"] = at
            return MessageRecord("doubt", since=row["since"])

    def standing_posted(self, series: str, seq: int, ts: str, at: datetime) -> None:
        with self.lock:
            row = self.standing.setdefault((series, seq), {"since": at})
            row.update(state="posted", ts=ts, claimed=None, posted_at=row.get("posted_at") or at)

    def standing_unsettled(self, series: str, seq: int) -> None:
        with self.lock:
            row = self.standing.get((series, seq))
            if row is not None and row["state"] == "posting":
                row["claimed"] = None

    def standing_not_posted(self, series: str, seq: int) -> None:
        with self.lock:
            if self.standing.get((series, seq), {}).get("state") == "posting":
                del self.standing[(series, seq)]
