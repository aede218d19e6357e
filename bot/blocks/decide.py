"""The decision matrix's modals: pick the issue type and severity, see the row, start the
recommended rollback from a form filled in as far as Rollbot can tell."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.blocks.text import plain, quote
from handlers.decide import Decision
from handlers.durations import format_duration
from handlers.runbook import DECISION_MATRIX, SEVERITIES, matrix_row

View = dict[str, Any]
ARGS_BLOCK = "args-"  # + kind (+ FILLED once Rollbot filled it in): see args_block
FILLED = "-filled"


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": plain(text, 75)}, "value": value}


def _select(action_id: str, placeholder: str, options: list[dict[str, Any]], chosen: str | None) -> dict[str, Any]:
    select: dict[str, Any] = {"type": "static_select", "action_id": action_id, "options": options,
                              "placeholder": {"type": "plain_text", "text": placeholder}}
    initial = next((o for o in options if o["value"] == chosen), None)
    if initial is not None:
        select["initial_option"] = initial
    return select


def _row_line(issue: str) -> str:
    row = matrix_row(issue)
    assert row is not None
    return f"{row.label} → {' + '.join(row.kinds)} · {format_duration(row.target)} · risk {row.risk}"


def metadata(issue: str | None, severity: str | None, channel: str | None, env: str | None = None) -> str:
    """What the matrix's modals carry: the row, the severity, the channel the person asked in
    (refusals are told there), and the environment a form's argument fields were drawn for."""
    return json.dumps({"issue": issue, "severity": severity, "channel": channel, "env": env})


def decide_modal(issue: str | None = None, severity: str | None = None, *, available: bool = True,
                 channel: str | None = None) -> View:
    """The runbook's decision matrix as a modal: pick the issue type and severity, get the row and
    one button that opens the recommended rollback."""
    chosen = matrix_row(issue)
    severity = severity if severity in SEVERITIES else chosen.severity if chosen else None
    issues = [_option(row.label, row.issue) for row in DECISION_MATRIX]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": "issue", "text": {"type": "mrkdwn", "text": "*Issue type*"},
         "accessory": _select("decide_issue", "What kind of issue is it?", issues, issue)},
        {"type": "section", "block_id": "severity", "text": {"type": "mrkdwn", "text": "*Severity*"},
         "accessory": _select("decide_severity", "How bad is it?", [_option(s, s) for s in SEVERITIES], severity)},
    ]
    if chosen is None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(
            f"• {_row_line(row.issue)}" for row in DECISION_MATRIX)}})
    else:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"*Recommended:* {' + '.join(chosen.kinds)} rollback · target {format_duration(chosen.target)} · "
            f"risk {chosen.risk} (the runbook's row: {chosen.label})")}})
        if severity != chosen.severity:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
                f"The runbook lists {chosen.issue} at {chosen.severity}; the incident records {severity}, and is "
                f"measured against this row's target.")}]})
        if available:
            blocks.append({"type": "actions", "block_id": "start", "elements": [{
                "type": "button", "action_id": "decide_start", "style": "primary", "value": f"{chosen.issue}|{severity}",
                "text": {"type": "plain_text", "text": plain(f"Start the {' + '.join(chosen.kinds)} rollback", 75)}}]})
        else:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
                f"This Rollbot has no {' + '.join(chosen.kinds)} rollback; follow the runbook by hand.")}]})
    return {
        "type": "modal",
        "callback_id": "decide_modal",
        "private_metadata": metadata(chosen.issue if chosen else None, severity, channel),
        "title": {"type": "plain_text", "text": "Decision matrix"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": blocks,
    }


_ARGUMENTS = {  # label and placeholder of each kind's arguments field
    "code": ("Code: deployment to roll back to", "empty: the last known good production deployment (or dpl_…)"),
    "env": ("Env vars to restore (UPPER_CASE, space separated)", "e.g. API_URL FEATURE_RECS [from S-12]"),
    "flag": ("Flag to turn off", "its key in Edge Config, e.g. new_checkout"),
    "database": ("Migration to revert (or restore <backup>)", "e.g. 20261128080000"),
}


def args_block(kind: str, filled: bool) -> str:
    """A field Rollbot filled in gets a new block id: Slack keeps what was typed in a block whose
    id stays, so only a changed id shows the new value (and a field it did not fill keeps what
    the person typed meanwhile)."""
    return f"{ARGS_BLOCK}{kind}" + (FILLED if filled else "")


def request_form(decided: Decision, environments: Sequence[str], env: str, suggestions: Mapping[str, str] | None,
                 reason: str = "", channel: str | None = None) -> View:
    """The recommended rollback, filled in: the environment, each kind's arguments as far as
    Rollbot can tell (``suggestions``; None while they are still being looked up), the reason."""
    row = decided.row
    suggested = suggestions is not None
    shown = [env, *(name for name in environments if name != env)][:100]  # a select holds 100 options
    blocks: list[dict[str, Any]] = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": quote(
            f"{_row_line(row.issue)} · severity {decided.severity}", 500)}]},
        {"type": "input", "block_id": "env", "dispatch_action": True,
         "label": {"type": "plain_text", "text": "Environment"},
         "element": _select("decided_env", "Where?", [_option(name, name) for name in shown], env),
         **({"hint": {"type": "plain_text", "text": (
             f"{len(environments) - len(shown)} more environments than a menu holds: type "
             f"`/rollback {' + '.join(row.kinds)} <env> …` for those.")}} if len(shown) < len(environments) else {})},
    ]
    for name in decided.parts:
        label, placeholder = _ARGUMENTS.get(name, (f"{name}: arguments", "as `/rollback help` shows them"))
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "max_length": 500,
                                   "placeholder": {"type": "plain_text", "text": plain(placeholder, 150)}}
        value = (suggestions or {}).get(name)
        if value:
            element["initial_value"] = value[:500]
        block: dict[str, Any] = {"type": "input", "block_id": args_block(name, bool(value)), "optional": True,
                                 "label": {"type": "plain_text", "text": plain(label, 2000)}, "element": element}
        if name in decided.suggesting:
            block["hint"] = {"type": "plain_text", "text": (
                "Looking up what changed…" if not suggested else
                "Filled in by Rollbot from what changed; check it." if value else "Rollbot could not tell; fill it in.")}
        blocks.append(block)
    reason_input: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "multiline": True,
                                    "max_length": 2900,
                                    "placeholder": {"type": "plain_text", "text": "What is happening?"}}
    if reason:
        reason_input["initial_value"] = reason[:2900]
    blocks.append({"type": "input", "block_id": "reason", "optional": True, "element": reason_input,
                   "label": {"type": "plain_text", "text": "Reason"}})
    return {
        "type": "modal",
        "callback_id": "decided_request",
        "private_metadata": metadata(row.issue, decided.severity, channel, env),
        "title": {"type": "plain_text", "text": plain(f"{' + '.join(row.kinds).capitalize()} rollback", 24)},
        "submit": {"type": "plain_text", "text": "Request"},
        "close": {"type": "plain_text", "text": "Back"},
        "blocks": blocks,
    }
