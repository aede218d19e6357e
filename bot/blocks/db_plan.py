"""The database kind's plan in the root message: the migration and its reverse SQL (or the
backup to restore), what the schema must look like after, and the backup taken first."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.blocks.text import ago, quote
from handlers.db_plan import DatabasePlan, size
from handlers.durations import format_duration
from handlers.plans import PlanBase

SHOWN = 8  # facts or versions listed; the rest are counted (`rollbot report` has the whole plan)


def _listed(items: list[str]) -> str:
    shown = items[:SHOWN]
    more = [f"…and {len(items) - SHOWN} more (`rollbot report` lists every one)"] if len(items) > SHOWN else []
    return "\n".join(shown + more)


class DatabasePlanRenderer:
    def fields(self, plan: PlanBase, now: datetime) -> list[str]:
        assert isinstance(plan, DatabasePlan)
        estimate = (f", about {format_duration(timedelta(seconds=plan.estimate_seconds))} by earlier backups"
                    if plan.estimate_seconds else "")
        first = f"*First*\n`pg_dump -Fc` of `{quote(plan.database, 60)}` (PostgreSQL {quote(plan.server_version, 40)})" \
                f" into the backup folder{estimate}"
        if plan.action == "restore" and plan.backup is not None:
            b = plan.backup
            changes = [f"`{quote(v, 40)}` removed" for v in plan.removed] + [f"`{quote(v, 40)}` back" for v in plan.added]
            return [
                f"*Restore*\n`{b.ref}` · {ago(b.taken_at, now)} · {size(b.size)} · {quote(b.reason, 80)}",
                first,
                "*Then*\n`pg_restore --clean --if-exists --single-transaction`; the history must match the backup's",
                "*Migration history*\n" + (_listed(changes) if changes else "the same versions as now"),
            ]
        assert plan.migration is not None
        m = plan.migration
        applied = f" · applied {ago(m.applied_at, now)}" if m.applied_at else ""
        facts = [f.expectation().describe() for f in plan.facts]
        return [
            f"*Revert*\n`{quote(m.version, 40)}` {quote(m.name, 80)}{applied}\nreverse SQL from "
            f"{quote(m.reverse_source, 120)} (sha256 `{m.reverse_sha256[:12]}`)",
            first,
            f"*Then, in one transaction*\nthe reverse SQL and the history row's removal (lock_timeout "
            f"{plan.lock_timeout_ms / 1000:g}s, statement_timeout {plan.statement_timeout_ms / 1000:g}s)",
            "*Afterwards*\n" + (_listed([quote(f, 120) for f in facts]) if facts else "the history row is gone"),
        ]
