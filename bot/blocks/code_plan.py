"""The code kind's plan in the root message: the Vercel deployments, from and to."""

from __future__ import annotations

from datetime import datetime

from bot.blocks.text import ago, quote
from handlers.code import CodePlan, Deployment
from handlers.plans import PlanBase


class CodePlanRenderer:
    def fields(self, plan: PlanBase, now: datetime) -> list[str]:
        assert isinstance(plan, CodePlan)
        return [
            "*From (serving now)*\n" + _deployment(plan.from_deployment, now),
            "*To (last known good)*\n" + _deployment(plan.to_deployment, now),
            f"*Project*\n`{quote(plan.project, 100)}`",
        ]


def _deployment(d: Deployment, now: datetime) -> str:
    message = quote((d.commit_message or "").splitlines()[0] if d.commit_message else "", 80)
    parts = [f"`{quote(d.uid, 60)}` · `{quote(d.short_sha, 12)}`"]
    if message:
        parts.append(f"“{message}”")
    parts.append(f"by {quote(d.author or 'unknown', 60)} · {ago(d.created_at, now)}")
    return "\n".join(parts)
