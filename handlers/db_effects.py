"""What a migration's SQL does to the schema, as ``handlers.db_sql`` reads it: the objects it
creates, alters and references, and what the schema must look like once it is reverted. Apart
from the parser, so what reads a database plan (the web, drawing one) does not load ``pglast``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Expectation:
    """One fact about the schema once a migration is reverted."""

    check: str  # "absent" (no object of that name), "no column", "column"
    target: str  # schema.name
    column: str | None = None

    def describe(self) -> str:
        if self.check == "absent":
            return f"{self.target} is gone"
        return f"{self.target}.{self.column} is {'gone' if self.check == 'no column' else 'back'}"


@dataclass
class Effects:
    """What some SQL does, by object name."""

    created: set[str] = field(default_factory=set)
    altered: set[str] = field(default_factory=set)
    referenced: set[str] = field(default_factory=set)
    bodies: list[str] = field(default_factory=list)  # function and DO bodies: text the parser does not read
    maybe_existed: set[str] = field(default_factory=set)  # IF NOT EXISTS / OR REPLACE: perhaps there before
    expectations: list[Expectation] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)

    @property
    def owned(self) -> set[str]:
        """What reverting this would change: what it created or altered."""
        return self.created | self.altered

    def touches(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` this SQL touches in any way (bodies searched as words; a schema is
        touched by anything in it)."""
        wanted = set(names)
        mine = self.created | self.altered | self.referenced
        hit = wanted & mine
        hit |= {name for name in wanted if "." not in name and any(m.startswith(f"{name}.") for m in mine)}
        for body in self.bodies:
            words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", body)}
            hit |= {name for name in wanted if name.rsplit(".", 1)[-1] in words}
        return hit
