"""Rollbot's Slack Web API client: slack_sdk's WebClient, with each call's latency and outcome
reported to the metrics (``rollbot_provider_call_seconds{provider="slack"}``), retries of a 429
included in the one call. Every Slack call the bot makes goes through one of these: the
notifier's, the directory's and, in listeners, Bolt's ``client`` (bot.app puts ours in place of
the one Bolt makes per request)."""

from __future__ import annotations

import re
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.metrics import provider_call

_METHOD = re.compile(r"^[a-zA-Z]+(\.[a-zA-Z]+){1,3}$")


class MeasuredWebClient(WebClient):
    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        method = api_method if _METHOD.match(api_method) else "other"
        started = time.perf_counter()
        try:
            response = super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            data = error.response.data if isinstance(error.response.data, dict) else {}
            status = str(data.get("error") or f"http_{error.response.status_code}")[:40]
            provider_call("slack", method, status, time.perf_counter() - started, ok=False)
            raise
        except Exception as error:
            provider_call("slack", method, "timeout" if isinstance(error, TimeoutError) else "transport",
                          time.perf_counter() - started, ok=False)
            raise
        provider_call("slack", method, "ok", time.perf_counter() - started, ok=True)
        return response
