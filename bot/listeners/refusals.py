"""A refusal (``handlers.services.Refused``: wrong role, wrong state, unknown incident) is an
answer for the user who clicked or typed, never an error: one place says it to them."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import Respond

from handlers.services import Refused


def refusals_told(tell: Callable[[str], object], work: Callable[[], object]) -> None:
    """Run ``work``; if it is refused, ``tell`` the user why (prefixed ``:no_entry:``)."""
    try:
        work()
    except Refused as refused:
        tell(f":no_entry: {refused.message}")


def ephemeral(respond: Respond) -> Callable[[str], object]:
    """``tell`` for a slash command: an ephemeral reply by its response_url."""
    return lambda text: respond(response_type="ephemeral", text=text)
