"""How a plan shows in the incident's root message: one renderer per kind, a generic default.

A renderer turns a kind's typed plan into the root message's fields (mrkdwn, escaped). Kinds
without one of their own show their change (from -> to) and target.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from bot.blocks.text import quote
from handlers.plans import PlanBase


class PlanRenderer(Protocol):
    def fields(self, plan: PlanBase, now: datetime) -> list[str]:
        """Root-message fields, each ``*Label*\\nvalue`` in mrkdwn; at most four."""


class GenericPlanRenderer:
    def fields(self, plan: PlanBase, now: datetime) -> list[str]:
        before, after = plan.change
        return [f"*From*\n`{quote(before, 100)}`", f"*To*\n`{quote(after, 100)}`", f"*Target*\n`{quote(plan.target, 100)}`"]


GENERIC = GenericPlanRenderer()


def renderer_for(renderers: Mapping[str, PlanRenderer], kind: str) -> PlanRenderer:
    return renderers.get(kind, GENERIC)
