"""Who may request and who may approve: roles from the policy file, resolved through Slack
user groups, and the four-eyes rules."""

from __future__ import annotations

from handlers.config import Policy
from handlers.model import Incident, Status, Why
from handlers.ports import Directory, DirectoryUnavailable

UNAVAILABLE = Why("Rollbot cannot read the Slack user groups that grant roles right now, so it cannot check "
                  "yours; try again in a minute.", "directory_unavailable")


class Roles:
    def __init__(self, policy: Policy, directory: Directory) -> None:
        self._policy = policy
        self._directory = directory

    def of(self, user: str) -> set[str]:
        """Every role the user holds, directly or through a user group.
        Raises DirectoryUnavailable when a needed group cannot be read."""
        held: set[str] = set()
        for name, members in self._policy.roles.items():
            if user in members.users:
                held.add(name)
                continue
            for group in members.groups:
                if user in self._directory.group_members(group):
                    held.add(name)
                    break
        return held

    def _held(self, user: str) -> set[str] | None:
        """The user's roles, or None when a user group cannot be read."""
        try:
            return self.of(user)
        except DirectoryUnavailable:
            return None

    def request_refusal(self, user: str, env: str) -> str | None:
        """Why ``user`` may not request a rollback on ``env``, or None when allowed."""
        allowed = self._policy.environments[env].policy.requesters
        held = self._held(user)
        if held is None:
            return UNAVAILABLE
        if held & set(allowed):
            return None
        return Why(
            f"you cannot request rollbacks on *{env}*: that needs the role "
            f"{_roles(allowed)}, and you hold {_roles(sorted(held)) or 'no role'}.", "not_a_requester"
        )

    def approval_refusal(self, user: str, incident: Incident, plan_hash: str) -> str | None:
        """Why ``user``'s approval would not count, or None when it counts."""
        env_policy = self._policy.environments[incident.env].policy
        rule = env_policy.rule(incident.kind)
        if incident.status is not Status.PENDING:
            return Why(f"{incident.ref} is already {incident.status.value}; there is nothing left to approve.",
                       "not_pending")
        if plan_hash != incident.plan_hash:
            return Why(
                f"the plan of {incident.ref} changed after this button was drawn; "
                "approvals are bound to the exact plan. Review the updated message and approve again.", "plan_changed"
            )
        if user == incident.requester and not env_policy.self_approval:
            return Why(f"you requested {incident.ref}, and *{incident.env}* needs a second person to approve "
                       "(four eyes).", "self_approval")
        held = self._held(user)
        if held is None:
            return UNAVAILABLE
        if not held & set(rule.approvers):
            return Why(
                f"{' + '.join(incident.kind.split('+')).capitalize()} rollbacks on *{incident.env}* are approved by "
                f"{_roles(rule.approvers)}; you hold {_roles(sorted(held)) or 'no role'}.", "not_an_approver"
            )
        if any(a.approver == user for a in incident.valid_approvals()):
            return Why(f"you already approved {incident.ref}; it needs {rule.approvals} distinct approvers.",
                       "already_approved")
        return None

    def deny_refusal(self, user: str, incident: Incident) -> str | None:
        """Deny is open to the requester (withdraw) and to anyone who could approve."""
        if incident.status is not Status.PENDING:
            return Why(f"{incident.ref} is already {incident.status.value}.", "not_pending")
        rule = self._policy.environments[incident.env].policy.rule(incident.kind)
        if user == incident.requester:
            return None
        held = self._held(user)
        if held is None:
            return UNAVAILABLE
        if held & set(rule.approvers):
            return None
        return Why(f"only the requester or {_roles(rule.approvers)} can deny {incident.ref}.", "not_allowed")

    def resolve_refusal(self, user: str, incident: Incident) -> str | None:
        """Resolving (and ticking the checklists) is for the requester, requesters and approvers."""
        env_policy = self._policy.environments[incident.env].policy
        if user == incident.requester:
            return None
        held = self._held(user)
        if held is None:
            return UNAVAILABLE
        if held & (set(env_policy.requesters) | set(env_policy.rule(incident.kind).approvers)):
            return None
        return Why(f"only the requester, requesters or approvers of *{incident.env}* can resolve {incident.ref}.",
                   "not_allowed")


def _roles(names: tuple[str, ...] | list[str]) -> str:
    return " or ".join(f"`{n}`" for n in names)
