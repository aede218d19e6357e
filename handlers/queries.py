"""Read-only questions a kind answers (`/rollback env prod list`): checked like a request (role,
configuration), audited, and nothing is started."""

from __future__ import annotations

from handlers.commands import Query
from handlers.kind import Queryable
from handlers.ports import ProviderError
from handlers.services import Refused, Services


def answer(svc: Services, user: str, cmd: Query) -> str:
    """The kind's answer (Slack mrkdwn); raises Refused with the reason."""
    action = f"query.{cmd.kind}"
    refusal = svc.roles.request_refusal(user, cmd.env)
    if refusal:
        raise svc.refuse(None, user, action, refusal, env=cmd.env)
    kind = svc.kinds[cmd.kind]
    if not isinstance(kind, Queryable):
        raise svc.refuse(None, user, action, f"{cmd.kind} rollbacks answer no questions.", env=cmd.env,
                         code="unavailable")
    env = svc.policy.environments[cmd.env]
    unconfigured = kind.configured(env)
    if unconfigured:
        raise svc.refuse(None, user, action, f"*{cmd.env}* {unconfigured}.", env=cmd.env, code="unconfigured")
    try:
        text = kind.query(cmd.env, env, cmd.words)
    except Refused as refused:
        raise svc.refuse(None, user, action, refused.message, env=cmd.env, code="no_answer") from None
    except ProviderError as error:
        raise svc.refuse(None, user, action, f"could not read the provider: {error.message}", env=cmd.env,
                         code="provider_error") from None
    svc.audit(None, user, action, "ok", env=cmd.env, words=list(cmd.words))
    return text
