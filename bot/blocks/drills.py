"""The standing reminders in ``[drills] channel``: the rollback drill and the procedure's review."""

from __future__ import annotations

from typing import Any

from bot.blocks.text import escape, plain, quote, sections, when
from handlers.drills import DrillReminder, ReviewReminder
from handlers.durations import format_duration
from handlers.runbook import DRILL_PROCEDURE

Block = dict[str, Any]
MORE = "`/rollback status` shows the schedule"


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": plain(text)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def drill_reminder_blocks(r: DrillReminder) -> tuple[str, list[Block]]:
    every = format_duration(r.every)
    if r.due_since is None:
        due = f"*A rollback drill is due:* none is on record yet. The runbook asks for one every quarter (here every {every})."
    else:
        due = (f"*A rollback drill is due* since {when(r.due_since)} on {r.due_since:%Y-%m-%d}: "
               f"the runbook asks for one every quarter (here every {every}).")
    last = r.last_drill
    if last is not None and last.rolled_back_at is not None:
        lines = [due, f"*Last drill:* {last.ref}, {quote(last.kind, 30)} on {quote(last.env, 60)}, "
                      f"{last.rolled_back_at:%Y-%m-%d}"]
    else:
        lines = [due, "*Last drill:* never"]
    if r.environments:
        first = quote(r.environments[0], 60)
        lines += [f"*Where:* a non-production environment: {', '.join(f'*{quote(e, 60)}*' for e in r.environments)}",
                  f"*Start one:* `/rollback drill code {first}` (a `flag`, `env` or `db` drill takes what that "
                  f"kind needs, e.g. `/rollback drill flag {first} &lt;key&gt;`). Drills are refused on production."]
    else:
        lines += ["*Where:* every environment here is production, and drills never touch one. Add a "
                  "non-production environment (for example `[environments.staging]`) to rollbot.toml, then "
                  "`/rollback drill code staging`."]
    lines.append("*The runbook's drill procedure* (Rollback Testing):")
    lines += [f"{n}. *{step}*: {escape(how)}" for n, (step, how) in enumerate(DRILL_PROCEDURE, start=1)]
    blocks = [_header(":alarm_clock: Rollback drill due"), *sections(lines, most=20, more=MORE),
              _context(f"Reminder {r.seq} · posted again every {format_duration(r.repeat)} while a drill is due; "
                       f"a drill moves the next one {every} on.")]
    since = "none on record" if r.due_since is None else f"due since {r.due_since:%Y-%m-%d}"
    return f"Rollback drill due ({since})", blocks


def review_reminder_blocks(r: ReviewReminder) -> tuple[str, list[Block]]:
    every = format_duration(r.every)
    link = (f"<{escape(r.procedure_url)}|Read the procedure>" if r.procedure_url
            else "No `procedure_url` is set under `[drills]`: add the procedure's link there.")
    lines = [f"*The rollback procedure is due for review:* last reviewed on {r.reviewed:%Y-%m-%d}, reviewed every "
             f"{every}, so due since {r.due_since:%Y-%m-%d}.",
             link,
             "*After the review, record it:* edit `rollbot.toml`, under `[drills]`: "
             f"`procedure_reviewed = {r.today:%Y-%m-%d}`, and restart Rollbot (web and worker) to load it."]
    blocks = [_header(":books: Rollback procedure review due"), *sections(lines, most=20, more=MORE),
              _context(f"Reminder {r.seq} · posted again every {format_duration(r.repeat)} until the review is "
                       "recorded.")]
    return f"Rollback procedure review due (since {r.due_since:%Y-%m-%d})", blocks
