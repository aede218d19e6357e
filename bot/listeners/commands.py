"""The `/rollback` slash command: parse, ack within Slack's 3 s, then do slow work."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.blocks.decide import decide_modal
from bot.blocks.modals import resolve_modal
from bot.blocks.status import history_blocks, status_blocks
from bot.blocks.text import escape, plain, sections
from handlers import approvals, commands, drills, queries, resolution
from handlers.commands import CommandError
from handlers.request_jobs import ReplyTo, queue_request
from handlers.services import Refused, Services

log = logging.getLogger("rollbot.commands")


def register(app: App, svc: Services) -> None:
    @app.command("/rollback")
    def rollback_command(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        user, text = body.get("user_id", ""), body.get("text", "")
        try:
            cmd = commands.parse(text, svc.policy, svc.kinds)
        except CommandError as error:
            ack(response_type="ephemeral", text=str(error))
            svc.audit(None, user, "command", "refused", text=text[:200], reason=str(error))
            return
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
                reply = ReplyTo(channel=str(body.get("channel_id") or svc.policy.environments[rollback.env].channel),
                                response_url=body.get("response_url") or None)
                # Durable before the ack: the worker plans it (handlers.request_jobs). A store error
                # goes to the error handler, which tells the user by response_url.
                queue_request(svc, user, rollback, reply, drill=drill)
                ack(response_type="ephemeral", text=f":mag: Planning {article} {what}…")
            case commands.Query():
                ack()  # first: the answer may read Vercel and open snapshots
                try:
                    answer = queries.answer(svc, user, cmd)
                except Refused as refused:
                    respond(response_type="ephemeral", text=f":no_entry: {refused.message}")
                    return
                # In sections, not in `text` (Slack shows 4,000 characters of that): a long listing
                # is split, never cut; `text` is the notification's short fallback.
                respond(response_type="ephemeral", text=plain(answer.splitlines()[0] if answer else "Rollbot", 150),
                        blocks=sections(answer.splitlines(), most=48, more="the rest did not fit in one Slack message"))
            case commands.StatusQuery():
                ack()  # first: the database may be slow
                respond(response_type="ephemeral", text="Rollbot status",
                        blocks=status_blocks(svc.store.open_incidents(), svc.store.last_rolled_back(), svc.clock.now(),
                                             drills.schedule(svc.policy.drills, svc.store.last_rolled_back(drill=True))))
            case commands.History(limit=limit):
                ack()
                respond(response_type="ephemeral", text="Rollback history",
                        blocks=history_blocks(svc.store.recent(limit), svc.store.incident_count()))
            case commands.Resolve(incident_id=incident_id):
                ack()  # first: the checks below may wait on Slack (user groups); the trigger lives 3 s
                try:
                    incident = resolution.resolvable(svc, user, incident_id, check_roles=False)
                except Refused as refused:
                    respond(response_type="ephemeral", text=f":no_entry: {refused.message}")
                    return
                client.views_open(trigger_id=body["trigger_id"], view=resolve_modal(incident))
            case commands.Cancel(incident_id=incident_id):
                ack()
                try:
                    incident = approvals.cancel(svc, user, incident_id)
                except Refused as refused:
                    respond(response_type="ephemeral", text=f":no_entry: {refused.message}")
                    return
                respond(response_type="ephemeral", text=f"{incident.ref} cancelled.")
            case commands.Decide():
                ack()
                client.views_open(trigger_id=body["trigger_id"], view=decide_modal(channel=body.get("channel_id")))
            case _:
                name = type(cmd).__name__.lower()
                svc.audit(None, user, f"command.{name}", "refused", reason="not available yet")
                ack(response_type="ephemeral",
                    text=f"`{escape(text.split()[0])}` is not available in this version of Rollbot yet. "
                         "Code rollbacks are: `/rollback code <env> [reason]`.")
