"""The `/rollback` slash command, in the request thread (bot.ack_first): parse, write what must
be durable, ack; a branch with slow work returns it, and it runs after the ack."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.ack_first import After, in_request_thread
from bot.blocks.decide import decide_modal
from bot.blocks.modals import resolve_modal
from bot.blocks.status import history_blocks, status_blocks
from bot.blocks.text import escape, plain, sections
from bot.delivery import first_delivery
from bot.listeners.refusals import ephemeral, refusals_told
from handlers import approvals, commands, drills, queries, resolution
from handlers.commands import CommandError
from handlers.request_jobs import ReplyTo, queue_request
from handlers.services import Services

log = logging.getLogger("rollbot.commands")


def register(app: App, svc: Services) -> None:
    @app.command("/rollback")
    @in_request_thread
    def rollback_command(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient,
                         context: dict[str, Any]) -> After:
        user, text = body.get("user_id", ""), body.get("text", "")
        try:
            cmd = commands.parse(text, svc.policy, svc.kinds)
        except CommandError as error:
            reason = str(error)
            ack(response_type="ephemeral", text=reason)
            return lambda: svc.audit(None, user, "command", "refused", text=text[:200], reason=reason,
                                     code="bad_command")
        match cmd:
            case commands.Help():
                ack(response_type="ephemeral",
                    text=f"*Rollbot* — guided, approved, audited rollbacks.\n```{escape(commands.usage(svc.kinds))}```")
            case commands.Rollback() | commands.Drill(rollback=commands.Rollback()):
                drill = isinstance(cmd, commands.Drill)
                rollback = cmd.rollback if isinstance(cmd, commands.Drill) else cmd
                assert rollback is not None
                what = f"{'drill of a ' if drill else ''}{rollback.kind} rollback on *{rollback.env}*"
                article = "an" if what[0] in "aeiou" else "a"
                if not first_delivery(svc.live, body, context):  # the same invocation, delivered again
                    ack()
                    return None
                reply = ReplyTo(channel=str(body.get("channel_id") or svc.policy.environments[rollback.env].channel),
                                response_url=body.get("response_url") or None)
                # Durable before the ack: the worker plans it (handlers.request_jobs). A store error
                # goes to the error handler, which tells the user by response_url.
                queue_request(svc, user, rollback, reply, drill=drill)
                ack(response_type="ephemeral", text=f":mag: Planning {article} {what}…")
            case commands.Query():
                ack()  # first: the answer may read Vercel and open snapshots
                return lambda: refusals_told(ephemeral(respond), lambda: _query(svc, user, cmd, respond))
            case commands.StatusQuery():
                ack()  # first: the database may be slow
                return lambda: respond(
                    response_type="ephemeral", text="Rollbot status",
                    blocks=status_blocks(svc.store.open_incidents(), svc.store.last_rolled_back(), svc.clock.now(),
                                         drills.schedule(svc.policy.drills, svc.store.last_rolled_back(drill=True))))
            case commands.History(limit=limit):
                ack()
                return lambda: respond(response_type="ephemeral", text="Rollback history",
                                       blocks=history_blocks(svc.store.recent(limit), svc.store.incident_count()))
            case commands.Resolve(incident_id=incident_id):
                ack()  # first: the checks may wait on Slack (user groups); the trigger lives 3 s
                return lambda: refusals_told(ephemeral(respond), lambda: client.views_open(
                    trigger_id=body["trigger_id"],
                    view=resolve_modal(resolution.resolvable(svc, user, incident_id, check_roles=False))))
            case commands.Cancel(incident_id=incident_id):
                ack()
                return lambda: refusals_told(ephemeral(respond), lambda: respond(
                    response_type="ephemeral", text=f"{approvals.cancel(svc, user, incident_id).ref} cancelled."))
            case commands.Decide():
                ack()
                return lambda: client.views_open(trigger_id=body["trigger_id"],
                                                 view=decide_modal(channel=body.get("channel_id")))
            case _:
                name = type(cmd).__name__.lower()
                ack(response_type="ephemeral",
                    text=f"`{escape(text.split()[0])}` is not available in this version of Rollbot yet. "
                         "Code rollbacks are: `/rollback code <env> [reason]`.")
                return lambda: svc.audit(None, user, f"command.{name}", "refused", reason="not available yet",
                                     code="unavailable")
        return None


def _query(svc: Services, user: str, cmd: commands.Query, respond: Respond) -> None:
    answer = queries.answer(svc, user, cmd)
    # In sections, not in `text` (Slack shows 4,000 characters of that): a long listing is split,
    # never cut; `text` is the notification's short fallback.
    respond(response_type="ephemeral", text=plain(answer.splitlines()[0] if answer else "Rollbot", 150),
            blocks=sections(answer.splitlines(), most=48, more="the rest did not fit in one Slack message"))
