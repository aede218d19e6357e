"""`/rollback decide`: the runbook's decision matrix turns an issue type and a severity into the
rollback to run, filled in as far as Rollbot can tell, and starts it as an incident that records
the row it came from (so its time to rollback is measured against that row's target).

The form a person submits names the environment and, for each kind of the row, that kind's
arguments as the command would take them (``API_URL FEATURE_X`` for env, ``dpl_…`` or nothing
for code); each kind parses its own. A row of several kinds (Security: code + config) starts one
combined rollback (``handlers.combined``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from handlers.commands import CommandError, Rollback
from handlers.config import PART_SEPARATOR, Environment
from handlers.kind import RollbackKind
from handlers.ports import ProviderError
from handlers.runbook import SEVERITIES, MatrixRow, matrix_row
from handlers.services import Refused, Services, log


@runtime_checkable
class Suggests(Protocol):
    """A kind that can propose its own arguments for a rollback started from the matrix."""

    def suggest(self, env_name: str, env: Environment) -> str | None:
        """The argument words to prefill ("API_URL FEATURE_RECS"), or None when it cannot tell.
        May read the provider; raises ProviderError or Refused when it cannot."""


@dataclass(frozen=True)
class Decision:
    row: MatrixRow
    severity: str
    kind: RollbackKind  # the row's kind, or the combined kind of its kinds
    suggesting: tuple[str, ...] = ()  # the parts whose kind can propose its arguments (``Suggests``)

    @property
    def parts(self) -> tuple[str, ...]:
        return self.row.kinds


class InputError(ValueError):
    """A field of the form is wrong; ``field`` names it: a kind's name (its arguments),
    "environment", "issue" or "severity"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def decision(svc: Services, issue: str | None, severity: str | None) -> Decision:
    """The matrix row for ``issue`` with the severity chosen (the row's own when none is)."""
    row = matrix_row(issue)
    if row is None:
        raise InputError("issue", "Pick an issue type from the decision matrix.")
    chosen = severity or row.severity
    if chosen not in SEVERITIES:
        raise InputError("severity", f"Severity is one of {', '.join(SEVERITIES)}.")
    name = PART_SEPARATOR.join(row.kinds)
    if name not in svc.kinds:
        raise InputError("issue", f"This Rollbot has no {' + '.join(row.kinds)} rollback; follow the runbook by hand.")
    suggesting = tuple(part for part in row.kinds if isinstance(svc.kinds[part], Suggests))
    return Decision(row, chosen, svc.kinds[name], suggesting)


def suggestions(svc: Services, decided: Decision, env_name: str) -> dict[str, str]:
    """Each part's arguments, as far as its kind can tell on ``env_name`` (best effort: a kind
    that cannot tell now leaves its field for the person to fill)."""
    env = svc.policy.environments[env_name]
    found: dict[str, str] = {}
    for name in decided.parts:
        kind = svc.kinds[name]
        if not isinstance(kind, Suggests) or kind.configured(env):
            continue
        try:
            words = kind.suggest(env_name, env)
        except (ProviderError, Refused) as error:
            log.info("no %s suggestion for %s: %s", name, env_name, getattr(error, "message", error))
            continue
        except Exception:  # e.g. the provider's client could not be built: the field stays for the person
            log.warning("no %s suggestion for %s", name, env_name, exc_info=True)
            continue
        if words:
            found[name] = words
    return found


def rollback(svc: Services, decided: Decision, env_name: str | None, arguments: Mapping[str, str],
             reason: str) -> Rollback:
    """The form's fields as the rollback command they stand for; InputError names a bad field."""
    if env_name is None or env_name not in svc.policy.environments:
        raise InputError("environment", "Pick the environment to roll back.")
    args: dict[str, Any] = {}
    for name in decided.parts:
        words = (arguments.get(name) or "").split()
        try:
            parsed, rest = svc.kinds[name].parse(env_name, words)
        except CommandError as error:
            raise InputError(name, str(error)) from None
        if rest.strip():
            raise InputError(name, f"`{rest.split()[0][:40]}` is not an argument of a {name} rollback; put "
                             "explanations in the reason.")
        args[name] = parsed
    kind_args = args[decided.parts[0]] if len(decided.parts) == 1 else args
    return Rollback(decided.kind.name, env_name, reason.strip(), kind_args, issue=decided.row.issue,
                    severity=decided.severity)
