"""The Bolt app factory: one App per process, listeners registered by kind."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from slack_bolt import App, BoltRequest, Respond
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient

from bot.ack_first import AckFirst
from bot.bootstrap import Container
from bot.listeners import actions, commands, decide, events, follow_ups, views
from bot.metrics import LISTENER_ERRORS
from bot.settings import secret

log = logging.getLogger("rollbot.app")


class _NoTokenNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that our configured client wins; it should."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


class RollbotApp(App):
    """Bolt's App for one workspace with the bot's static token, with the request context built
    for less: Bolt's ``_init_context`` makes a new WebClient for every request (about a fifth of
    a slash command's request-thread CPU, 0.58 -> 0.47 ms), which Rollbot would only replace with
    its own client (bot.slack_api: every Slack call measured). Listeners get the bot's one
    client. No Bolt code path in this configuration changes it: the token is the bot's, Bolt's
    middleware that would put a workflow function's token on the request's client is off
    (``attaching_function_token_enabled=False``: Rollbot has no workflow functions), and
    multi-workspace authorization (which sets each request's token on its client) is refused.
    tests/integration/test_bolt_context.py checks that the context holds what Bolt's own would."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._authorize is not None or self._oauth_flow is not None:
            raise ValueError("RollbotApp shares one Slack client: it serves one workspace with a static token")

    def _init_context(self, req: BoltRequest) -> None:
        req.context["logger"] = self._framework_logger
        req.context["token"] = self._token
        req.context["client"] = self._client
        req.context["listener_runner"] = self.listener_runner


def bolt_app(signing_secret: str, client: WebClient, executor: ThreadPoolExecutor) -> RollbotApp:
    """The Bolt app as Rollbot runs it, without listeners (``create_app`` registers them)."""
    bolt_log = logging.getLogger("slack_bolt.App")
    bolt_log.addFilter(_NoTokenNotice())
    return RollbotApp(
        logger=bolt_log,
        signing_secret=signing_secret,
        client=client,
        listener_executor=executor,
        token_verification_enabled=False,
        # bot.edge's gate verified the signature (and the replay window) before Bolt sees the
        # request; Socket Mode has no signature. Verifying twice cost every request a second HMAC.
        request_verification_enabled=False,
        raise_error_for_unhandled_request=True,
        attaching_function_token_enabled=False,  # see RollbotApp: the client is shared
        process_before_response=True,  # bot.ack_first: the answer leaves when ack() is called, unpolled
    )


def create_app(container: Container) -> App:
    settings = container.settings
    # The default executor has 5 threads: a few slow rollbacks would starve every ack.
    container.executor = ThreadPoolExecutor(max_workers=settings.rollbot_listener_threads,
                                            thread_name_prefix="rollbot-listener")
    app = bolt_app(secret(settings.slack_signing_secret), container.slack, container.executor)

    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Respond | None) -> BoltResponse | None:
        """One place that turns an unexpected failure into a clear message for the user."""
        if isinstance(error, BoltUnhandledRequestError):
            return BoltResponse(status=404, body="")
        failed(error, respond)
        return None

    def on_listener_error(error: Exception, body: dict[str, Any]) -> None:
        url = body.get("response_url")
        failed(error, Respond(response_url=url) if isinstance(url, str) and url else None)

    def failed(error: Exception, respond: Respond | None) -> None:
        LISTENER_ERRORS.labels(error=type(error).__name__).inc()
        # One line for the operator (with the incident's context in the structured fields); the
        # traceback only at DEBUG, so a flood of bad requests cannot flood the logs.
        log.error("listener failed: %s: %s", type(error).__name__, str(error)[:200])
        log.debug("listener failure", exc_info=error)
        if respond is not None:
            unreachable = isinstance(error, (psycopg.OperationalError, PoolTimeout))  # not a DataError, say
            what = ("cannot reach its database right now" if unreachable
                    else f"hit an internal error ({type(error).__name__})")
            try:
                respond(response_type="ephemeral", replace_original=False, text=(
                    f":warning: Rollbot {what} while handling that, so it may not have taken effect. "
                    "Check the incident thread before trying again; the details are in the bot's logs."))
            except Exception:
                log.warning("could not tell the user about the error")

    listeners = AckFirst(container.executor, on_listener_error).app(app)
    for module in (commands, actions, views, decide, follow_ups, events):
        module.register(listeners, container.services)
    return app
