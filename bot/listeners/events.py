"""Events API: App Home."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.blocks.home import HOME_RECENT, home_view
from bot.delivery import first_delivery
from handlers import drills
from handlers.services import Services

log = logging.getLogger("rollbot.events")


def register(app: App, svc: Services) -> None:
    @app.event("app_home_opened")
    def on_home(event: dict[str, Any], body: dict[str, Any], client: WebClient, context: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        # Slack retries a delivery it thinks was lost (X-Slack-Retry-Num): handle each event once.
        if not first_delivery(svc.live, body, context):
            return
        view = home_view(svc.store.open_incidents(), svc.store.last_rolled_back(), svc.store.recent(HOME_RECENT),
                         svc.clock.now(), drills.schedule(svc.policy.drills, svc.store.last_rolled_back(drill=True)),
                         total=svc.store.incident_count())
        client.views_publish(user_id=event["user"], view=view)
