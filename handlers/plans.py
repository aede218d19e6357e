"""Typed plans: exactly what a rollback will do, one pydantic model per rollback kind.

Every plan model subclasses ``PlanBase`` and fixes ``kind`` to a ``Literal``; the registry of
kinds builds a discriminated union of them (``KindRegistry.load_plan``), so a plan stored as
jsonb is validated on load and an unknown or malformed one is a clear ``PlanError``.

Approvals are bound to ``PlanBase.hash``: a hash of what the plan *does* (``binding``), not of
how it is described, so re-reading a commit message never voids an approval; and of its
``revision``, so approvals voided by a plan change never count again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict


class PlanError(ValueError):
    """A stored or given plan cannot be read (unknown kind, missing or malformed fields)."""


class PlanBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    env: str
    revision: int = 0  # raised each time the plan is re-resolved after approvals were voided

    def binding(self) -> dict[str, Any]:
        """What approvals are bound to. Kinds exclude display-only fields by overriding this."""
        return self.model_dump(mode="json")

    @property
    def hash(self) -> str:
        bound = {**self.binding(), "revision": self.revision} if self.revision else self.binding()
        canonical = json.dumps(bound, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def target(self) -> str:
        """The provider-side thing being changed (a project, a database, a config store)."""
        raise NotImplementedError

    @property
    def change(self) -> tuple[str, str]:
        """(from, to) as short plain words, for thread notes, summaries and reports."""
        raise NotImplementedError

    @property
    def serves_after(self) -> str | None:
        """The deployment production serves once this plan is done, for a plan that moves
        production (a code rollback); None for the others. A later part of a combined rollback
        builds on it (``handlers.kind.Follows``)."""
        return None

    def components(self) -> tuple[PlanBase, ...]:
        """The single-kind plans this plan is made of: itself, or a combined plan's parts."""
        return (self,)

    def builds_on(self, earlier: PlanBase) -> bool:
        """This plan's change supersedes ``earlier``'s on the provider (an env restore rebuilds the
        deployment a code rollback moved production to): reading ``earlier`` back afterwards would
        find this plan's result, so a combined rollback reads it back before this part runs."""
        return False

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
