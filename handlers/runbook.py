"""The runbook's fixed content: decision matrix, checklists and next steps on failure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from handlers.config import RollbackType


@dataclass(frozen=True)
class MatrixRow:
    issue: str
    severity: str
    kinds: tuple[RollbackType, ...]
    target: timedelta
    risk: str

    @property
    def label(self) -> str:
        return f"{self.issue} ({self.severity})"


DECISION_MATRIX: tuple[MatrixRow, ...] = (
    MatrixRow("Critical bug", "High", ("code",), timedelta(minutes=5), "Low"),
    MatrixRow("Data corruption", "Critical", ("database",), timedelta(minutes=30), "Medium"),
    MatrixRow("Performance", "High", ("code",), timedelta(minutes=5), "Low"),
    MatrixRow("Security", "Critical", ("code", "env"), timedelta(minutes=10), "Low"),
    MatrixRow("Feature broken", "Medium", ("flag",), timedelta(minutes=1), "Low"),
)

SEVERITIES = ("Low", "Medium", "High", "Critical")


def matrix_row(issue: str | None) -> MatrixRow | None:
    """The decision matrix's row for an issue type ("Security"), or None."""
    return next((row for row in DECISION_MATRIX if row.issue == issue), None)


def matrix_target(issue: str | None, kind_target: timedelta, kind_risk: str) -> tuple[timedelta, str]:
    """The time-to-rollback target and risk an incident is measured against: its decision-matrix
    row's when it was started from one (`/rollback decide`), else its kind's own."""
    row = matrix_row(issue)
    return (row.target, row.risk) if row else (kind_target, kind_risk)


# Pre-rollback checklist: key -> label. Items the bot does itself are ticked by it.
PRE_CHECKLIST: tuple[tuple[str, str], ...] = (
    ("root_cause", "Identify root cause"),
    ("type", "Determine rollback type"),
    ("notify", "Notify team"),
    ("backup", "Backup current state (if database rollback)"),
    ("steps", "Document rollback steps"),
    ("known_good", "Verify rollback target is known good state"),
)

POST_CHECKLIST: tuple[tuple[str, str], ...] = (
    ("post_stable", "Verify system is stable"),
    ("post_errors", "Monitor error rates"),
    ("post_metrics", "Check critical metrics"),
    ("post_users", "Notify users (if needed)"),
    ("post_document", "Document incident"),
    ("post_fix", "Plan fix for next deployment"),
)


def checklist_groups(checklist: dict[str, bool]) -> list[tuple[str, list[tuple[str, str, bool]]]]:
    """The incident's checklists in runbook order: [(group, [(key, label, done)])], only the
    items the incident has (the post-rollback one appears once the rollback is verified)."""
    groups = []
    for name, items in (("pre", PRE_CHECKLIST), ("post", POST_CHECKLIST)):
        present = [(key, label, checklist[key]) for key, label in items if key in checklist]
        if present:
            groups.append((name, present))
    return groups


# Pre-rollback items that apply only to the kinds that ask for them (``RollbackKind.checklist``).
KIND_ITEMS = ("backup",)


def initial_checklist(extra: tuple[str, ...] = (), ticks: tuple[str, ...] = ()) -> dict[str, bool]:
    """Checklist state at request time: the command itself determined the type and documents
    the steps (the plan); ``extra`` items (a backup) only where the kind asks for them, and the
    kind's ``ticks`` already done."""
    state = {key: False for key, _ in PRE_CHECKLIST if key not in KIND_ITEMS or key in extra}
    state["type"] = True
    state["steps"] = True
    for key in ticks:
        if key in state:
            state[key] = True
    return state


# "Rollback Testing" (quarterly): the runbook's steps, and how each is done with Rollbot.
DRILL_PROCEDURE: tuple[tuple[str, str], ...] = (
    ("Create test deployment", "deploy a test build to the drill's environment"),
    ("Apply test migration", "apply a test migration to that environment's database"),
    ("Test rollback procedure", "`/rollback drill <type> <env>`: the whole flow, approved, verified and monitored"),
    ("Document any issues", "in the drill's Resolve form (root cause, lessons learned), kept in its summary"),
    ("Update procedure if needed", "then record the review: `procedure_reviewed` under `[drills]`"),
)
