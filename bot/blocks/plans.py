"""How a plan shows in the incident's root message: one renderer per kind, a generic default.

A renderer turns a kind's typed plan into the root message's fields (mrkdwn, escaped). Kinds
without one of their own show their change (from -> to) and target.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from bot.blocks.text import quote
from handlers.config import PART_SEPARATOR
from handlers.plans import PlanBase


class PlanRenderer(Protocol):
    def fields(self, plan: PlanBase, now: datetime) -> list[str]:
        """Root-message fields, each ``*Label*\\nvalue`` in mrkdwn; at most four."""


class GenericPlanRenderer:
    def fields(self, plan: PlanBase, now: datetime) -> list[str]:
        before, after = plan.change
        return [f"*From*\n`{quote(before, 100)}`", f"*To*\n`{quote(after, 100)}`", f"*Target*\n`{quote(plan.target, 100)}`"]


GENERIC = GenericPlanRenderer()
FIELD_LIMIT = 2000  # Slack: a section field's text


class CombinedPlanRenderer:
    """A combined plan (``code+env``): one field per part, in execution order, each drawn by its
    own kind's renderer. A part too long for one field says where the rest is."""

    def __init__(self, renderers: Mapping[str, PlanRenderer]) -> None:
        self._renderers = renderers

    def fields(self, plan: PlanBase, now: datetime) -> list[str]:
        parts: list[PlanBase] = list(getattr(plan, "parts", ()))
        out = []
        for index, part in enumerate(parts[:4], start=1):
            lines = [f"*{index}. {quote(part.kind.capitalize(), 40)}*"]
            for field in renderer_for(self._renderers, part.kind).fields(part, now):
                lines += field.replace("*\n", "*: ", 1).splitlines()
            out.append(_fit(lines, f"…the rest of part {index} is in `rollbot report`"))
        return out


def _fit(lines: list[str], more: str) -> str:
    """``lines`` joined within a field's limit, whole lines only, saying where the rest is."""
    text = "\n".join(lines)
    if len(text) <= FIELD_LIMIT:
        return text
    kept: list[str] = []
    for line in lines:
        if len("\n".join([*kept, line, more])) > FIELD_LIMIT:
            break
        kept.append(line)
    return "\n".join([*kept, more])


def renderer_for(renderers: Mapping[str, PlanRenderer], kind: str) -> PlanRenderer:
    if kind not in renderers and PART_SEPARATOR in kind:
        return CombinedPlanRenderer(renderers)
    return renderers.get(kind, GENERIC)
