"""Acknowledge the moment a listener acks: no polling between the ack and Slack's answer.

Bolt's default (``process_before_response=False``) runs a listener on its executor and has the
request thread poll every 10 ms until the listener calls ``ack()``: about 5 ms added to every
ack at rest, more under load. Rollbot runs Bolt with ``process_before_response=True`` and
registers each listener through :class:`AckFirst`, in one of two ways:

* **In the request thread** (:func:`in_request_thread`), Bolt's own ack/lazy split: the listener
  does what must happen before its ack (a durable write) and acks; whatever it has to do after
  the ack it *returns* as a callable, which runs on the listener executor. No thread hand-off
  before the answer. What it touches before the ack waits a bounded time (the web's Postgres
  pool gives up after ``bot.web_master.POOL_WAIT`` seconds, the replay check's after 0.5, a
  refused Redis at once), so the answer leaves inside Slack's 3 s when Postgres or Redis is
  down.
* **On the executor** (every other listener): the request thread waits on an event that
  ``ack()`` sets, so the answer leaves as soon as it exists, and what the listener does after
  ``ack()`` never holds the request thread; a listener that has not acked after
  ``ACK_WAIT_SECONDS`` gets an empty ack.

A listener without an ``ack`` parameter (events, which Bolt acknowledges itself) is handed to
the executor whole, and the request returns at once.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, cast

from slack_bolt import App

from bot.metrics import RECEIVED, request_done

log = logging.getLogger("rollbot.app")

ACK_WAIT_SECONDS = 2.5  # Slack shows a timeout at 3 s; past this the request returns an empty ack
OnError = Callable[[Exception, dict[str, Any]], None]
After = Callable[[], object] | None  # what an in-request-thread listener returns: its work after the ack
INLINE = "__rollbot_in_request_thread__"


def in_request_thread(listener: Callable[..., After]) -> Callable[..., After]:
    """Mark a listener that acks before it returns and hands back what it does after the ack."""
    setattr(listener, INLINE, True)
    return listener


class AckFirst:
    def __init__(self, executor: Executor, on_error: OnError) -> None:
        self._executor = executor
        self._on_error = on_error

    def app(self, app: App) -> App:
        """``app`` as listener modules see it: ``@app.command(...)`` and the rest wrap each listener."""
        return cast(App, _Registrar(app, self.wrap))

    def wrap(self, listener: Callable[..., Any]) -> Callable[..., None]:
        takes_ack = "ack" in inspect.signature(listener).parameters
        if takes_ack and getattr(listener, INLINE, False):
            return self._inline(listener)

        @functools.wraps(listener)  # Bolt reads the listener's parameters through __wrapped__
        def run(**kwargs: Any) -> None:
            received = RECEIVED.get()  # in the request's thread: the executor's threads do not have it
            acked = threading.Event()
            if takes_ack:
                real_ack = kwargs["ack"]

                def ack(*args: Any, **ack_kwargs: Any) -> Any:
                    try:
                        return real_ack(*args, **ack_kwargs)
                    finally:
                        acked.set()

                kwargs["ack"] = ack
            else:
                acked.set()
            self._submit(self._call, listener, kwargs, acked, received)
            if not acked.wait(ACK_WAIT_SECONDS):
                log.warning("listener %s did not ack within %.1f s; Slack gets an empty ack", listener.__name__,
                            ACK_WAIT_SECONDS)
                if takes_ack:
                    real_ack()  # a 200 before Slack's 3 s: the listener's own answer comes by response_url

        return run

    def _inline(self, listener: Callable[..., After]) -> Callable[..., None]:
        @functools.wraps(listener)  # Bolt reads the listener's parameters through __wrapped__
        def run(**kwargs: Any) -> None:
            real_ack = kwargs["ack"]
            received = RECEIVED.get()
            acked = False

            def ack(*args: Any, **ack_kwargs: Any) -> Any:
                nonlocal acked
                acked = True
                return real_ack(*args, **ack_kwargs)

            body = kwargs.get("body")
            body = body if isinstance(body, dict) else {}
            try:
                after = listener(**{**kwargs, "ack": ack})
            except Exception as error:
                if not acked:
                    real_ack()  # an empty 200 (never Bolt's 404); the user hears by response_url
                self._submit(self._on_error, error, body)  # off the request thread
                request_done(body, received)
                return
            if not acked:
                log.warning("listener %s returned without acking; Slack gets an empty ack", listener.__name__)
                real_ack()
            if after is not None:
                self._submit(self._after, after, body, received)
            else:
                request_done(body, received)

        return run

    def _submit(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn`` on the listener executor in a copy of this request's context (its log fields)."""
        self._executor.submit(contextvars.copy_context().run, fn, *args)

    def _after(self, after: Callable[[], object], body: dict[str, Any], received: float | None) -> None:
        try:
            after()
        except Exception as error:
            self._on_error(error, body)
        finally:
            request_done(body, received)

    def _call(self, listener: Callable[..., Any], kwargs: dict[str, Any], acked: threading.Event,
              received: float | None = None) -> None:
        try:
            listener(**kwargs)
        except Exception as error:
            ack = kwargs.get("ack")
            if ack is not None and not acked.is_set():
                try:
                    ack()  # an empty 200 (never Bolt's 404): the error handler tells the user by response_url
                except Exception:
                    log.warning("could not send the empty ack for a failed listener")
            acked.set()
            body = kwargs.get("body")
            self._on_error(error, body if isinstance(body, dict) else {})
        finally:
            acked.set()
            request_done(kwargs.get("body"), received)


class _Registrar:
    """Stands in for the App in ``register(app, svc)``: every decorator wraps its listener."""

    def __init__(self, app: App, wrap: Callable[[Callable[..., Any]], Callable[..., None]]) -> None:
        self._app = app
        self._wrap = wrap

    def __getattr__(self, name: str) -> Any:
        register = getattr(self._app, name)
        if name not in ("command", "action", "view", "event", "options", "shortcut", "view_closed",
                        "view_submission", "block_action"):
            return register

        def decorator(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
            bolt_decorator = register(*args, **kwargs)

            def apply(listener: Callable[..., Any]) -> Callable[..., Any]:
                bolt_decorator(self._wrap(listener))
                return listener

            return apply

        return decorator
