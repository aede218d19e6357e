"""A combined rollback: several kinds under one incident, one approval, executed in order.

The decision matrix's "Security / Critical" row asks for code + config: ``CombinedKind(code, env)``
is the kind ``code+env``. Its plan holds each part's own typed plan; approvals are bound to all of
them at once (one hash). After approval the parts run one after another, each executed by its own
kind under the same lease and verified by reading its provider back before the next one starts;
a part that does not verify stops the rest. A resumed execution skips the parts already verified
and lets the interrupted one read its provider back, as every kind does on its own.

It holds the lock of every part on its environment (``handlers.kind.lock_names``), so a code
rollback and a ``code+env`` one never run side by side; its approval rule is the strictest of its
parts' unless the policy gives ``code+env`` a rule of its own (``EnvironmentPolicy.rule``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, SerializeAsAny, create_model

from handlers.config import PART_SEPARATOR, Environment
from handlers.kind import Follows, KindRegistry, RollbackFailed, RollbackKind, Run, Step, Verification
from handlers.plans import PlanBase, PlanError
from handlers.ports import ProviderError
from handlers.runbook import DECISION_MATRIX
from handlers.services import Refused


class CombinedPlan(PlanBase):
    """The parts' plans, in execution order (each a plan of its own kind)."""

    parts: tuple[SerializeAsAny[PlanBase], ...]

    def binding(self) -> dict[str, Any]:
        return {"kind": self.kind, "env": self.env, "parts": [part.binding() for part in self.parts]}

    def components(self) -> tuple[PlanBase, ...]:
        return tuple(self.parts)

    @property
    def target(self) -> str:
        return "; ".join(part.target for part in self.parts)

    @property
    def change(self) -> tuple[str, str]:
        changes = [part.change for part in self.parts]
        return " + ".join(c[0] for c in changes), " + ".join(c[1] for c in changes)


def verify_step(part: str) -> Step:
    return Step(f"{part}.verified", f"{part}: reads back as planned")


class _PartRun:
    """The run lent to one part: the same lease and audit log; an unresolved attempt is one of
    this part's own steps; only the first part may use what the re-check read (a later part's
    reads came before the earlier parts' changes)."""

    def __init__(self, run: Run, kind: RollbackKind, rechecked: PlanBase | None) -> None:
        self._run = run
        self.unresolved_attempt = run.unresolved([s.name for s in kind.steps])
        self.rechecked = rechecked

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)


class CombinedKind:
    """Runs ``parts`` (registered kinds) in order as one rollback."""

    def __init__(self, registry: KindRegistry, parts: Sequence[str], *, target: timedelta, risk: str) -> None:
        if len(parts) < 2 or len(set(parts)) != len(parts):
            raise ValueError("a combined rollback needs two or more different kinds")
        self._registry = registry
        self.parts: tuple[RollbackKind, ...] = tuple(registry[name] for name in parts)
        if any(PART_SEPARATOR in kind.name for kind in self.parts):
            raise ValueError("a combined rollback's parts must be single kinds")
        self.name = PART_SEPARATOR.join(parts)
        alias = {"env": "config"}
        self.words = tuple(dict.fromkeys(
            (self.name, PART_SEPARATOR.join(alias.get(p, p) for p in parts))))
        self.title = " + ".join(kind.title.removesuffix(" rollback") for kind in self.parts) + " rollback"
        self.usage = (f"/rollback {self.name} <env> "
                      + " ".join(f"[{kind.name} args]" for kind in self.parts)
                      + " [reason]   " + ", then ".join(kind.name for kind in self.parts) + ", one approval")
        self.target = target
        self.risk = risk
        self.lease = max(kind.lease for kind in self.parts)
        self.steps: tuple[Step, ...] = tuple(
            step for kind in self.parts for step in (*kind.steps, verify_step(kind.name)))
        self.ticks = tuple(dict.fromkeys(t for kind in self.parts for t in kind.ticks
                                         if all(t in k.ticks for k in self.parts)))
        self.checklist = tuple(dict.fromkeys(c for kind in self.parts for c in kind.checklist))
        self.next_step = "\n".join(f"{i}. {kind.next_step}" for i, kind in enumerate(self.parts, start=1))

        def load(value: Any) -> Any:
            return value if isinstance(value, PlanBase) else registry.load_plan(value)

        self._model: type[CombinedPlan] = create_model(  # kind fixed to this name, as the registry requires
            "".join(kind.name.title() for kind in self.parts) + "Plan", __base__=CombinedPlan,
            kind=(Literal[self.name], self.name),  # type: ignore[arg-type]
            parts=(tuple[Annotated[SerializeAsAny[PlanBase], BeforeValidator(load)], ...], ...),
        )
        self.plan_model: type[PlanBase] = self._model

    # -- request -----------------------------------------------------------------------------

    def parse(self, env: str, words: Sequence[str]) -> tuple[dict[str, Any], str]:
        """Each part's arguments in turn (``[dpl_…] KEY…``), then the reason."""
        args: dict[str, Any] = {}
        rest = list(words)
        for kind in self.parts:
            args[kind.name], reason = kind.parse(env, rest)
            rest = reason.split()
        return args, " ".join(rest)

    def configured(self, env: Environment) -> str | None:
        for kind in self.parts:
            missing = kind.configured(env)
            if missing:
                return f"{missing} (needed by the {self.name} rollback)"
        if not env.policy.rule(self.name).approvers:
            return (f"has no role that may approve every part of a {self.name} rollback; give "
                    f"`[environments.<env>.policy]` a `\"{self.name}\" = {{ approvers = [...] }}` rule")
        return None

    def plan(self, env_name: str, env: Environment, args: Mapping[str, Any]) -> PlanBase:
        return self._combine(env_name, 0, [(kind, lambda k=kind: k.plan(env_name, env, args.get(k.name) or {}))
                                           for kind in self.parts])

    def replan(self, plan: PlanBase, env: Environment) -> PlanBase:
        return self._combine(plan.env, plan.revision, [(kind, lambda k=kind, p=part: k.replan(p, env))
                                                       for kind, part in zip(self.parts, self._parts(plan), strict=True)])

    def _combine(self, env_name: str, revision: int, resolvers: Sequence[tuple[RollbackKind, Any]]) -> PlanBase:
        """Each part resolved in order, as it will run after the parts before it (``Follows``);
        a refusal names the part."""
        parts: list[PlanBase] = []
        for kind, resolve in resolvers:
            try:
                part = resolve()
            except Refused as refused:
                raise Refused(f"{kind.title}: {refused.message}") from None
            parts.append(kind.after(part, parts) if isinstance(kind, Follows) else part)
        return self._model(kind=self.name, env=env_name, revision=revision, parts=tuple(parts))

    # -- execution ---------------------------------------------------------------------------

    def execute(self, plan: PlanBase, run: Run) -> str:
        done = []
        parts = self._parts(plan)
        for index, (kind, part) in enumerate(zip(self.parts, parts, strict=True), start=1):
            step = verify_step(kind.name)
            if run.done(step.name):  # an earlier executor finished and verified this part
                done.append(f"{kind.title}: done earlier")
                continue
            where = f"{kind.title} (part {index} of {len(parts)})"
            try:
                rechecked = self._parts(run.rechecked)[0] if index == 1 and run.rechecked is not None else None
                result = kind.execute(part, _PartRun(run, kind, rechecked))
                run.step(step.name)
                verification = kind.verify(part)
            except RollbackFailed as failed:
                raise RollbackFailed(f"{where}: {failed.message}{self._before(index)}") from None
            except ProviderError as error:  # the same error (a read-back follows it), saying which part and what stays
                raise ProviderError(f"{where}: {error.message}{self._before(index)}", code=error.code,
                                    status=error.status, uncertain=error.uncertain,
                                    retry_after=error.retry_after) from None
            run.audit("read_back", "ok" if verification.ok else "failed", part=kind.name, detail=verification.detail,
                      **verification.facts)
            if not verification.ok:
                run.finish(step.name, "failed", verification.detail)
                raise RollbackFailed(f"{where}: read-back: {verification.detail}{self._before(index)}")
            run.finish(step.name, "ok", verification.detail)
            done.append(f"{kind.title}: {result}")
        return "; ".join(done)

    def _before(self, index: int) -> str:
        """What already happened when part ``index`` fails: the earlier parts stay rolled back."""
        earlier = [kind.title for kind in self.parts[:index - 1]]
        later = [kind.title for kind in self.parts[index:]]
        said = f"; {' and '.join(earlier)} before it is done and verified, and stays" if earlier else ""
        return said + (f"; {' and '.join(later)} was not started" if later else "")

    def took_effect(self, plan: PlanBase) -> bool:
        """Every part's change is in place: a part a later one built on counts through it."""
        parts = self._parts(plan)
        return all(kind.took_effect(part) for kind, part in zip(self.parts, parts, strict=True)
                   if self._superseded_by(parts, part) is None)

    def verify(self, plan: PlanBase) -> Verification:
        """Each part read back, except one a later part built on (production now serves the code
        part's target rebuilt with the restored variables): that one was read back before the
        later part ran, and the later part's read-back shows what production serves now."""
        parts = self._parts(plan)
        results: list[tuple[RollbackKind, Verification]] = []
        for kind, part in zip(self.parts, parts, strict=True):
            later = self._superseded_by(parts, part)
            if later is None:
                results.append((kind, kind.verify(part)))
            else:
                results.append((kind, Verification(True, f"read back before the {later} part built on it")))
        facts: dict[str, Any] = {kind.name: result.facts for kind, result in results}
        return Verification(ok=all(r.ok for _, r in results),
                            detail="; ".join(f"{kind.title}: {r.detail}" for kind, r in results), facts=facts)

    def _superseded_by(self, parts: Sequence[PlanBase], part: PlanBase) -> str | None:
        """The kind of the later part that builds on ``part``, if any."""
        later = parts[parts.index(part) + 1:]
        return next((p.kind for p in later if p.builds_on(part)), None)

    def _parts(self, plan: PlanBase) -> tuple[PlanBase, ...]:
        parts = getattr(plan, "parts", None)
        if not isinstance(plan, CombinedPlan) or parts is None or \
                [p.kind for p in parts] != [k.name for k in self.parts]:
            raise PlanError(f"not a {self.name} plan")
        # A part runs under the combined plan's revision: what a part derives from it (the env
        # part's redeploy tag) is never shared with a revision whose approvals were voided.
        return tuple(p if p.revision == plan.revision else p.model_copy(update={"revision": plan.revision})
                     for p in parts)

    def part_plans(self, plan: PlanBase) -> tuple[tuple[RollbackKind, PlanBase], ...]:
        """(kind, plan) of each part, in order: for renderers and summaries."""
        return tuple(zip(self.parts, self._parts(plan), strict=True))


def register_combined(registry: KindRegistry) -> None:
    """Register the decision matrix's combined rows (Security / Critical: ``code+env``) whose
    parts are all registered, with the row's target and risk."""
    for row in DECISION_MATRIX:
        name = PART_SEPARATOR.join(row.kinds)
        if len(row.kinds) > 1 and name not in registry and all(kind in registry for kind in row.kinds):
            registry.register(CombinedKind(registry, row.kinds, target=row.target, risk=row.risk))
