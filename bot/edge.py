"""The gate in front of Bolt at ``POST /slack/events``: verify before anything is parsed, then
check the request's shape, then let each signed request act once.

1. Signature (Slack's v0 HMAC over ``v0:<timestamp>:<raw body>``, 5-minute window). A missing,
   non-numeric or stale timestamp, a missing or wrong signature: 401, and the body is never
   parsed. Only the raw bytes are read, and at most ``MAX_BODY`` of them.
2. Shape. A signed body that is not UTF-8, not the form or JSON Slack sends, or whose payload is
   not a JSON object with a ``type``: 400 with a plain reason (Slack shows nothing, the logs
   one line). Bolt never sees it, so it never raises on it.
3. Replay. The same signed bytes (same timestamp, same body) are acted on once (``seen``, see
   bot.replay); a replay gets an empty 200, as the first delivery's effects already exist.
   Slack's own retries of events carry a new timestamp; those are caught by ``event_id``
   (bot.delivery), whose key is claimed in the same Redis round trip and handed to the listener.

The body is parsed once, here: what passes is handed to Bolt as the dict Bolt would have parsed
(a form's fields, or the JSON of its ``payload``), so a large interactive payload is not decoded
twice.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

from bot.delivery import delivery_key

log = logging.getLogger("rollbot.edge")

WINDOW_SECONDS = 300
MAX_BODY = 1 << 20  # Slack's payloads are far smaller; a larger body is refused unread


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def verify(secret: str, timestamp: str, signature: str, body: bytes, now: float) -> Refusal | None:
    """Slack's request signature, checked on the raw bytes before anything else."""
    if not (timestamp.isascii() and timestamp.isdigit() and 0 < len(timestamp) <= 12):
        return Refusal(401, "missing or malformed X-Slack-Request-Timestamp")
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        return Refusal(401, "X-Slack-Request-Timestamp is outside the 5-minute window")
    if not (signature.isascii() and signature.startswith("v0=")):
        return Refusal(401, "missing or malformed X-Slack-Signature")
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return Refusal(401, "the signature does not match")
    return None


Body = dict[str, Any]


def shape(content_type: str, body: bytes) -> Refusal | Body:
    """Is this a request Slack would send (a slash command, an interaction, an event)? If so,
    the body as Bolt reads it: the form's fields (the last of a repeated one), or the JSON
    object of an interaction's ``payload`` or of a JSON body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "the body is not UTF-8")
    media = content_type.split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            form = read_form(text)
        except ValueError:
            return Refusal(400, "the form body is malformed")
        if "payload" in form:
            return _payload(form["payload"][-1])
        if "command" in form and "user_id" in form:
            return {name: values[-1] for name, values in form.items()}
        return Refusal(400, "a form body needs a command or a payload")
    if media == "application/json":
        return _payload(text)
    return Refusal(400, f"unsupported content type {media or 'none'!r}")


MAX_FIELDS = 100


def read_form(text: str) -> dict[str, list[str]]:
    """``urllib.parse.parse_qs(text, keep_blank_values=True, strict_parsing=True,
    max_num_fields=100)`` with a faster percent-decoder (``unquote_plus_fast``): an
    interaction's payload carries the whole message it was clicked on, tens of kilobytes of %XX,
    and urllib decodes those one escape at a time in Python. ValueError for a malformed body."""
    if not text:
        return {}
    fields = text.split("&")
    if len(fields) > MAX_FIELDS:
        raise ValueError("too many fields")
    form: dict[str, list[str]] = {}
    for field in fields:
        name, equals, value = field.partition("=")
        if not equals:
            raise ValueError("a field without =")
        form.setdefault(unquote_plus_fast(name), []).append(unquote_plus_fast(value))
    return form


def unquote_plus_fast(text: str) -> str:
    """``urllib.parse.unquote_plus(text)``, about six times faster on long input: every %XX
    becomes a \\xXX escape that the ``unicode_escape`` codec decodes (each byte as one
    latin-1 character), then the bytes are read as UTF-8 (invalid sequences replaced, as
    urllib does). A body with anything else (a malformed escape, a non-ASCII character) is left
    to urllib."""
    if "%" not in text:
        return text.replace("+", " ")
    try:
        escaped = text.replace("\\", "%5C").replace("+", " ").replace("%", "\\x").encode("ascii")
        return codecs.decode(escaped, "unicode_escape").encode("latin-1").decode("utf-8", "replace")
    except (UnicodeError, ValueError):
        return unquote_plus(text)


def _payload(text: str) -> Refusal | Body:
    try:
        data = json.loads(text)
    except ValueError:
        return Refusal(400, "the payload is not JSON")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return Refusal(400, "the payload is not an object with a type")
    for key, kinds in _FIELD_TYPES.items():
        if key in data and not isinstance(data[key], kinds):
            return Refusal(400, f"the payload's {key} is not what Slack sends")
    for key, check in _REQUIRED.get(data["type"], {}).items():
        if not check(data.get(key)):
            return Refusal(400, f"a {data['type']} payload needs {key} as Slack sends it")
    return data


def _objects_with(field: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(
            isinstance(v, dict) and isinstance(v.get(field), str) for v in value)
    return check


def _object_with(field: str) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, dict) and isinstance(value.get(field), str)


# What Slack always sends, so Bolt can read it: anything else is refused before Bolt sees it.
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "user": dict, "team": (dict, type(None)), "channel": (dict, type(None)), "container": dict, "message": dict,
    "view": dict, "actions": list, "event": dict, "enterprise": (dict, type(None)), "response_url": str,
    "trigger_id": str, "api_app_id": str, "token": str, "event_id": str, "callback_id": str,
}
_REQUIRED: dict[str, dict[str, Callable[[Any], bool]]] = {
    "block_actions": {"actions": _objects_with("action_id"), "user": _object_with("id")},
    "view_submission": {"view": _object_with("id"), "user": _object_with("id")},
    "view_closed": {"view": _object_with("id"), "user": _object_with("id")},
    "event_callback": {"event": _object_with("type")},
    "url_verification": {"challenge": lambda value: isinstance(value, str)},
    "shortcut": {"callback_id": lambda value: isinstance(value, str), "user": _object_with("id")},
    "message_action": {"callback_id": lambda value: isinstance(value, str), "user": _object_with("id")},
}


class Admitted(NamedTuple):
    """A signed, well-formed first delivery: its body as Bolt reads it, and whether its click or
    event (bot.delivery) arrives for the first time (None when that was not asked or not known)."""

    body: Body
    first_delivery: bool | None = None


Admit = Callable[[str, tuple[str, int] | None], tuple[bool, bool | None]]
"""``(request key, delivery key and TTL or None) -> (a replay, first delivery)``:
``bot.replay.ReplayFilter.admit``."""


class SlackGate:
    """Applies the three checks; ``admit`` answers whether a request key was acted on before
    (and claims its delivery key in the same round trip)."""

    def __init__(self, signing_secret: str, admit: Admit, clock: Callable[[], float] = time.time) -> None:
        self._secret = signing_secret
        self._admit = admit
        self._clock = clock

    def check(self, environ: dict[str, Any], body: bytes) -> Refusal | Admitted:
        """A refusal, or the parsed body of a signed, well-formed first delivery."""
        refusal = verify(self._secret, environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "").strip(),
                         environ.get("HTTP_X_SLACK_SIGNATURE", "").strip(), body, self._clock())
        parsed = refusal or shape(environ.get("CONTENT_TYPE", ""), body)
        if isinstance(parsed, Refusal):
            log.info("refused a request to /slack/events: %s (%s)", parsed.reason, parsed.status)
            return parsed
        key = hashlib.sha256(environ["HTTP_X_SLACK_SIGNATURE"].encode()).hexdigest()
        replayed, first_delivery = self._admit(key, delivery_key(parsed))
        if replayed:
            log.info("dropped a replayed request (its first delivery was acted on)")
            return Refusal(200, "")
        return Admitted(parsed, first_delivery)


def sender(body: Body) -> str | None:
    """Who sent a Slack request: a command's ``user_id``, an interaction's ``user.id``, an
    event's ``user`` (for the logs)."""
    event = body.get("event")
    user = body.get("user_id") or body.get("user") or (event.get("user") if isinstance(event, dict) else None)
    if isinstance(user, dict):
        user = user.get("id")
    return user[:40] if isinstance(user, str) and user else None
