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

# What the runbook promises per rollback type when no issue type was chosen.
TYPE_TARGETS: dict[RollbackType, tuple[timedelta, str]] = {
    "code": (timedelta(minutes=5), "Low"),
    "database": (timedelta(minutes=30), "Medium"),
    "env": (timedelta(minutes=5), "Low"),
    "flag": (timedelta(minutes=1), "Low"),
}


def target_for(kind: RollbackType) -> tuple[timedelta, str]:
    """Time-to-rollback target and risk for a rollback type."""
    return TYPE_TARGETS[kind]


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


def initial_checklist(kind: RollbackType) -> dict[str, bool]:
    """Checklist state at request time: the command itself determined the type and documents
    the steps (the plan); a backup only applies to database rollbacks."""
    state = {key: False for key, _ in PRE_CHECKLIST}
    state["type"] = True
    state["steps"] = True
    if kind != "database":
        state.pop("backup")
    return state


NEXT_STEP_ON_FAILURE: dict[RollbackType, str] = {
    "code": (
        "Runbook, code rollback: open Vercel → Project → Deployments, find the last known good "
        "deployment, choose “…” → “Promote to Production”, then verify it is live and monitor for 15 minutes."
    ),
    "database": "Runbook: restore from the backup taken before the rollback, or apply the reverse SQL by hand.",
    "env": "Runbook: revert the variables in Vercel → Settings → Environment Variables and redeploy.",
    "flag": "Runbook: disable the flag in Edge Config by hand and verify it reads disabled.",
}
