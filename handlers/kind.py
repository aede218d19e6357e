"""The seam every rollback kind plugs into: the ``RollbackKind`` protocol and its registry.

A kind (code, database, env, flag, or another provider later) is one module plus one adapter.
It parses its own arguments, resolves a concrete plan, re-checks it, executes with a fencing
hold before every provider call, reads back whether a call took effect, verifies, and says what
the runbook advises on failure. It declares its decision-matrix target, its steps, the checklist
items it ticks and its lease. The generic driver (``requests``, ``approvals``, ``execution``,
``monitoring``, ``resolution``, ``summary``) only ever talks to this protocol.

See docs/adding-a-rollback-kind.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Protocol, Union, runtime_checkable

from pydantic import Field, TypeAdapter, ValidationError

from handlers.config import PART_SEPARATOR, Environment
from handlers.plans import PlanBase, PlanError


def lock_names(kind: str) -> tuple[str, ...]:
    """The locks an incident of ``kind`` holds on its environment while pending or executing: its
    own name, or each part's for a combined kind, so ``code+env`` and ``code`` exclude each other."""
    return tuple(kind.split(PART_SEPARATOR))


class LeaseLost(Exception):
    """Another executor took over (this one stalled past its lease): stop without acting."""


class RollbackFailed(Exception):
    """The rollback did not happen; ``message`` is safe to show and says what was seen."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Verification:
    """The read-back after execution: did the provider end up as the plan said?"""

    ok: bool
    detail: str  # plain words: "production serves dpl_b (abc1234)"; the renderer escapes it
    facts: dict[str, Any] = field(default_factory=dict)  # for the audit log


@dataclass(frozen=True)
class Step:
    """One step of a kind's execution, as the progress message shows it."""

    name: str  # audit and step-run name, e.g. "switch.flip"
    label: str  # what the progress message says, e.g. "Turn the switch off"


class Run(Protocol):
    """What the driver lends a kind while it executes (implemented by ``handlers.execution``)."""

    @property
    def incident_id(self) -> int: ...
    @property
    def incident_ref(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def unresolved_attempt(self) -> bool:
        """An earlier executor audited an ``attempt`` of a change and stopped before recording its
        outcome: the change may have been sent. Read the provider back; never resend blindly."""

    @property
    def rechecked(self) -> PlanBase | None:
        """The approved plan as the provider showed it a moment before this execution began (the
        re-check's ``replan``, by this executor; equal to the approved plan by hash), or None: an
        execution taken over after a step was recorded, a re-check that could not read the
        provider, a later part of a combined rollback. A kind may use what it read then as its
        read before a change, while that read is fresh."""

    def unresolved(self, steps: Sequence[str]) -> bool:
        """``unresolved_attempt`` for the named steps only (one part of a combined rollback)."""

    def done(self, step: str) -> bool:
        """Step ``step`` finished ok, in this execution or an earlier one of the same incident."""

    def hold(self) -> None:
        """Renew the execution lease; raises LeaseLost when another executor owns it now.
        Call it right before every provider call that changes something."""

    def audit(self, action: str, outcome: str, **detail: Any) -> None: ...

    def step(self, name: str) -> None:
        """Mark step ``name`` running (the previous one, if any, is finished ok)."""

    def finish(self, name: str, status: str, detail: str) -> None: ...

    def note(self, name: str, detail: str) -> None:
        """How running step ``name`` is getting on, shown in the progress message (a long backup's
        bytes and time); cheap to call often: redraws are folded together."""

    def tick(self, key: str) -> None:
        """Tick a checklist item the kind has done itself ("backup")."""


@runtime_checkable
class RollbackKind(Protocol):
    name: str  # "code": the key in the registry, in stored plans and in the policy
    words: tuple[str, ...]  # command words that name it: ("code",), ("database", "db")
    title: str  # "Code rollback"
    usage: str  # help line(s) for /rollback help
    plan_model: type[PlanBase]
    target: timedelta  # the decision matrix's time-to-rollback target
    risk: str  # the decision matrix's risk: "Low", "Medium"
    lease: timedelta  # how long a silent executor keeps the incident (the heartbeat renews it)
    steps: tuple[Step, ...]  # execution steps in order; "verify" follows them
    ticks: tuple[str, ...]  # pre-rollback checklist keys the bot ticks when the kind runs
    checklist: tuple[str, ...]  # extra pre-rollback checklist keys this kind needs ("backup")
    next_step: str  # the runbook's next step when this kind fails

    def parse(self, env: str, words: Sequence[str]) -> tuple[dict[str, Any], str]:
        """Arguments after ``<kind> <env>`` -> (arguments, reason). Raises CommandError."""

    def configured(self, env: Environment) -> str | None:
        """Why this kind cannot run on ``env`` (a missing key), or None."""

    def plan(self, env_name: str, env: Environment, args: Mapping[str, Any]) -> PlanBase:
        """Resolve the concrete plan. Raises Refused (with the reason) or ProviderError."""

    def replan(self, plan: PlanBase, env: Environment) -> PlanBase:
        """The same request resolved again now; a different hash voids the approvals."""

    def execute(self, plan: PlanBase, run: Run) -> str:
        """Make the change, calling ``run.hold()`` before every provider call that changes
        something. Never sends a change again after an uncertain outcome unless the provider's
        own record shows the first did not and will not take effect. Returns what was done.
        Raises RollbackFailed (nothing changed), LeaseLost, or ProviderError."""

    def took_effect(self, plan: PlanBase) -> bool:
        """After an error: does the provider show the plan's change in place?"""

    def verify(self, plan: PlanBase) -> Verification:
        """Read the provider back. Raises ProviderError when it cannot be read."""


@runtime_checkable
class Queryable(Protocol):
    """A kind that also answers read-only questions: `/rollback env prod list`."""

    queries: tuple[str, ...]  # the words after ``<kind> <env>`` that ask one ("list")

    def query(self, env_name: str, env: Environment, words: Sequence[str]) -> str:
        """The answer, as Slack mrkdwn (user text escaped). Raises Refused or ProviderError."""


@runtime_checkable
class Follows(Protocol):
    """A kind whose plan depends on what runs before it in a combined rollback (``code+env``: the
    env kind rebuilds the deployment the code part rolls back to, not the one serving now)."""

    def after(self, plan: PlanBase, earlier: Sequence[PlanBase]) -> PlanBase:
        """``plan`` as it must run once the ``earlier`` parts are done (the same plan if none matters)."""


@runtime_checkable
class Maintained(Protocol):
    """A kind with standing work for the worker (the env kind's scheduled snapshots)."""

    def maintain(self, env_name: str, env: Environment) -> str | None:
        """Do what is due for ``env`` now, if anything; returns what was done. Called by the
        leading worker on its pool, once per environment per tick at most."""


class KindRegistry:
    """Names -> kinds, built once by the bootstrap."""

    def __init__(self, kinds: Sequence[RollbackKind] = ()) -> None:
        self._kinds: dict[str, RollbackKind] = {}
        self._words: dict[str, str] = {}
        self._adapter: TypeAdapter[Any] | None = None
        for kind in kinds:
            self.register(kind)

    def register(self, kind: RollbackKind) -> None:
        if not isinstance(kind, RollbackKind):
            raise TypeError(f"{kind!r} does not implement RollbackKind")
        if kind.name in self._kinds:
            raise ValueError(f"a rollback kind named {kind.name!r} is already registered")
        for word in (kind.name, *kind.words):
            if word in self._words and self._words[word] != kind.name:
                raise ValueError(f"the command word {word!r} already names {self._words[word]!r}")
        fixed = kind.plan_model.model_fields["kind"].annotation
        if getattr(fixed, "__args__", None) != (kind.name,):
            raise ValueError(f"{kind.plan_model.__name__}.kind must be Literal[{kind.name!r}]")
        self._kinds[kind.name] = kind
        for word in (kind.name, *kind.words):
            self._words[word] = kind.name
        self._adapter = None

    def __getitem__(self, name: str) -> RollbackKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise KeyError(f"no rollback kind named {name!r} (known: {', '.join(self._kinds) or 'none'})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[RollbackKind]:
        return iter(self._kinds.values())

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def by_word(self, word: str) -> RollbackKind | None:
        name = self._words.get(word.lower())
        return self._kinds[name] if name else None

    def load_plan(self, data: Any) -> PlanBase:
        """A stored plan, validated against its kind's model (discriminated on ``kind``)."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise PlanError("a stored plan must be an object with a 'kind'")
        if data["kind"] not in self._kinds:
            raise PlanError(f"a stored plan is of kind {data['kind']!r}, which this Rollbot does not know "
                            f"(known: {', '.join(self._kinds) or 'none'})")
        try:
            plan: PlanBase = self._plan_adapter().validate_python(data)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'plan'}: {e['msg']}"
                                 for e in error.errors()[:5])
            raise PlanError(f"a stored {data['kind']} plan is malformed ({problems})") from None
        return plan

    def _plan_adapter(self) -> TypeAdapter[Any]:
        if self._adapter is None:
            models = tuple(kind.plan_model for kind in self._kinds.values())
            union: Any = models[0] if len(models) == 1 else Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007
            self._adapter = TypeAdapter(union)
        return self._adapter


PlanLoader = Callable[[Any], PlanBase]
