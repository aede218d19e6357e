"""The env kind's plan in the root message: which variables change, as fingerprints only (never
a value), the snapshot they come from, and the redeploy that makes them take effect."""

from __future__ import annotations

from datetime import datetime

from bot.blocks.text import ago, quote
from handlers.env_plan import EnvChange, EnvPlan
from handlers.plans import PlanBase

SHOWN = 12  # variables listed in the field; the rest are counted, and all are in the plan and report


class EnvPlanRenderer:
    def fields(self, plan: PlanBase, now: datetime) -> list[str]:
        assert isinstance(plan, EnvPlan)
        lines = [_change(c) for c in plan.changes]
        lines += [f"`{quote(key, 60)}` already as in the snapshot" for key in plan.unchanged]
        shown = lines[:SHOWN]
        if len(lines) > SHOWN:
            shown.append(f"…and {len(lines) - SHOWN} more (`rollbot report` lists every one)")
        fields = [
            "*Variables (fingerprints, not values)*\n" + "\n".join(shown),
            f"*From snapshot*\n`S-{plan.snapshot_id}` · taken {ago(plan.snapshot_at, now)}"
            + (" · named by the requester" if plan.snapshot_named else " · the newest that differs from now"),
            f"*Then*\nRedeploy production `{quote(plan.deployment, 60)}` of `{quote(plan.project_name, 60)}` with "
            "them, wait until it serves"
            + ("; then promote it (production is pinned by an instant rollback, and promoting turns automatic "
               "production deployments back on)" if plan.promote else ""),
        ]
        if plan.since:
            left = ", ".join(f"`{quote(item, 60)}`" for item in plan.since[:SHOWN])
            more = f" and {len(plan.since) - SHOWN} more" if len(plan.since) > SHOWN else ""
            fields.append(f"*Since the snapshot, left alone*\n{left}{more}")
        return fields


def _change(change: EnvChange) -> str:
    key = f"`{quote(change.key, 60)}`"
    if change.action == "create":
        return f"{key} removed since; re-created as `{change.to_fp}`"
    return f"{key} changed: `{change.from_fp}` → `{change.to_fp}`"
