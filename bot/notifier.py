"""Slack implementation of ``handlers.ports.Notifier``: each message posted once, ``chat.update`` after.

Every post about an incident goes through ``bot.exactly_once.OncePoster``: it carries its
identity in Slack metadata and is never sent again blindly. The client retries only HTTP 429
(Slack refused the call, so nothing was posted).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.blocks.drills import drill_reminder_blocks, review_reminder_blocks
from bot.blocks.follow_ups import follow_up_blocks, follow_up_done_blocks
from bot.blocks.incident import root_blocks, root_text
from bot.blocks.plans import PlanRenderer, renderer_for
from bot.blocks.summary import summary_blocks, timeline_parts
from bot.blocks.thread import (
    closed_blocks,
    failure_blocks,
    notify_blocks,
    plan_changed_blocks,
    progress_blocks,
    reminder_blocks,
    verification_blocks,
)
from bot.exactly_once import OncePoster, Posted, delivery_failed, retryable
from handlers.clock import Clock
from handlers.config import Policy
from handlers.drills import DrillReminder, StandingReminder
from handlers.kind import KindRegistry, Verification
from handlers.model import FollowUp, HealthResult, Incident, StepRun
from handlers.plans import PlanBase
from handlers.ports import DeliveryFailed, Ledgers, LiveState
from handlers.summary import Summary

log = logging.getLogger("rollbot.slack")
# Slack: "about one message per second per channel", short bursts allowed.
POSTS_PER_SECOND = 1.0
POST_BURST = 3
UPDATE_ATTEMPTS = 3


class SlackNotifier:
    def __init__(self, client: WebClient, policy: Policy, clock: Clock, live: LiveState, kinds: KindRegistry,
                 messages: Ledgers, renderers: Mapping[str, PlanRenderer] | None = None,
                 read_back_tries: tuple[float, ...] | None = None) -> None:
        self._client = client
        self._once = OncePoster(client, messages, clock, self._pace,
                                *((read_back_tries,) if read_back_tries is not None else ()))
        self._live = live
        self._policy = policy
        self._clock = clock
        self._kinds = kinds
        self._renderers = renderers or {}
        self._workspace_url: str | None = None

    def _root(self, incident: Incident) -> tuple[str, list[dict[str, Any]]]:
        kind = self._kinds[incident.kind]
        blocks = root_blocks(incident, kind, self._policy.environments[incident.env].policy, self._clock.now(),
                             renderer_for(self._renderers, incident.kind))
        return root_text(incident, kind), blocks

    def post_root(self, incident: Incident, steps: Sequence[StepRun]) -> tuple[str, str]:
        channel = self._policy.environments[incident.env].channel
        text, blocks = self._root(incident)
        return channel, self._once.post(incident, "root", channel, text, blocks).ts

    def find_root(self, incident: Incident) -> tuple[str, str] | None:
        channel = self._policy.environments[incident.env].channel
        ts = self._once.find(incident, "root", channel)
        return (channel, ts) if ts else None

    def refresh_root(self, incident: Incident, steps: Sequence[StepRun]) -> None:
        refs = self._refs(incident)
        if not ("channel" in refs and "root_ts" in refs):
            return
        text, blocks = self._root(incident)
        self._update(refs["channel"], refs["root_ts"], text, blocks)

    def notify_team(self, incident: Incident, mentions: Sequence[str]) -> None:
        approvers = self._policy.environments[incident.env].policy.rule(incident.kind).approvers
        text, blocks = notify_blocks(incident, mentions, approvers)
        self._thread(incident, "notify", text, blocks)

    def progress(self, incident: Incident, steps: Sequence[StepRun]) -> str | None:
        """Post the progress message once, then update it in place."""
        text, blocks = progress_blocks(incident, self._kinds[incident.kind], steps)
        refs = self._refs(incident)
        if "progress_ts" in refs and "channel" in refs:
            self._update(refs["channel"], refs["progress_ts"], text, blocks)
            return refs["progress_ts"]
        try:
            posted = self._post_thread(incident, "progress", text, blocks)
        except DeliveryFailed as error:
            log.warning("progress message not delivered: %s", error, extra={"incident": incident.id})
            return None
        if posted.adopted:  # drawn by an earlier attempt: show the steps as they are now
            self._update(refs["channel"], posted.ts, text, blocks)
        self._live.remember_thread(incident.id, {"progress_ts": posted.ts})
        return posted.ts

    def verification(self, incident: Incident, result: Verification, health: Sequence[HealthResult], ok: bool) -> None:
        monitor = self._policy.environments[incident.env].monitor
        text, blocks = verification_blocks(incident, result, health, ok, monitor)
        self._thread(incident, f"verification.r{incident.plan.revision}", text, blocks)

    def reminder(self, incident: Incident, index: int, total: int, health: Sequence[HealthResult]) -> None:
        text, blocks = reminder_blocks(incident, index, total, health)
        self._post_thread(incident, f"monitor.{index}", text, blocks)

    def failure(self, incident: Incident, error: str, next_step: str) -> None:
        text, blocks = failure_blocks(incident, error, next_step)
        self._thread(incident, "failure", text, blocks, broadcast=True)

    def summary(self, incident: Incident, summary: Summary) -> str:
        channel = self._refs(incident).get("channel") or self._policy.environments[incident.env].channel
        text, blocks = summary_blocks(summary)
        ts = self._once.post(incident, "summary", channel, text, blocks).ts
        link = self._permalink(channel, ts)
        self._thread(incident, "summary.link", f"Post-incident summary posted: {link}",
                     [{"type": "section", "text": {"type": "mrkdwn",
                                                   "text": f":memo: Post-incident summary posted: <{link}|{incident.ref} summary>"}}])
        # A timeline the summary shows only part of is posted whole in the thread. Each part has
        # its own key, so a retried delivery posts only the parts Slack does not have yet; a part
        # not delivered fails the delivery, and the worker tries again.
        for number, (part_text, part_blocks) in enumerate(timeline_parts(summary)):
            self._post_thread(incident, f"timeline.{number}", part_text, part_blocks)
        return ts

    def refresh_summary(self, incident: Incident, summary: Summary) -> None:
        channel = self._refs(incident).get("channel") or self._policy.environments[incident.env].channel
        if incident.summary_ts:
            text, blocks = summary_blocks(summary)
            self._update(channel, incident.summary_ts, text, blocks)

    def follow_up(self, incident: Incident, follow_up: FollowUp, round_: int) -> None:
        """A DM: ``chat.postMessage`` to the owner's user ID posts in the app's DM with them (no
        extra scope). Not read back (that needs the DM's own ID and ``im:history``): at most once."""
        text, blocks = follow_up_blocks(incident, follow_up, round_, self._policy.follow_ups.every,
                                        self._summary_link(incident))
        self._once.post(incident, f"follow_up.{follow_up.id}.{round_}", follow_up.owner, text, blocks,
                        read_back=False)

    def follow_up_done(self, incident: Incident, follow_up: FollowUp, channel: str, ts: str) -> None:
        text, blocks = follow_up_done_blocks(incident, follow_up, self._summary_link(incident))
        self._update(channel, ts, text, blocks)

    def closed(self, incident: Incident) -> None:
        text, blocks = closed_blocks(incident)
        self._thread(incident, "closed", text, blocks)

    def plan_changed(self, incident: Incident, old: PlanBase) -> None:
        text, blocks = plan_changed_blocks(incident, old)
        self._thread(incident, f"plan.r{incident.plan.revision}", text, blocks)

    def standing_reminder(self, reminder: StandingReminder) -> str:
        channel = self._policy.drills.channel
        if not channel:
            raise DeliveryFailed("no [drills] channel to post in", definite=True)
        text, blocks = (drill_reminder_blocks(reminder) if isinstance(reminder, DrillReminder)
                        else review_reminder_blocks(reminder))
        return self._once.post_standing(reminder.series, reminder.seq, channel, text, blocks).ts

    def tell(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        self._safe(self._client.chat_postEphemeral, channel=channel, user=user, text=text,
                   **({"thread_ts": thread_ts} if thread_ts else {}))

    def answer(self, channel: str, response_url: str | None, user: str, text: str) -> None:
        if response_url:
            try:
                sent = WebhookClient(response_url, timeout=10).send(
                    text=text, response_type="ephemeral", replace_original=False)
                if sent.status_code == 200:
                    return
                log.warning("response_url answer refused (HTTP %s); answering in the channel", sent.status_code)
            except Exception as error:  # the URL expired, or Slack is unreachable: try the channel
                log.warning("response_url answer failed (%s); answering in the channel", type(error).__name__)
        self.tell(channel, user, text)

    # -- helpers -----------------------------------------------------------------------------

    def _refs(self, incident: Incident) -> dict[str, str]:
        """Where the incident lives in Slack: Redis first (rebuilt from Postgres when empty)."""
        refs = dict(self._live.thread_refs(incident.id) or {})
        for key, value in (("channel", incident.channel), ("root_ts", incident.root_ts),
                           ("progress_ts", incident.progress_ts)):
            if value and key not in refs:
                refs[key] = value
        return refs

    def _post_thread(self, incident: Incident, key: str, text: str, blocks: list[dict[str, Any]],
                     broadcast: bool = False) -> Posted:
        refs = self._refs(incident)
        if not ("channel" in refs and "root_ts" in refs):
            raise DeliveryFailed(f"{incident.ref} has no Slack thread yet", definite=True)
        return self._once.post(incident, key, refs["channel"], text, blocks, thread_ts=refs["root_ts"],
                               broadcast=broadcast)

    def _thread(self, incident: Incident, key: str, text: str, blocks: list[dict[str, Any]],
                broadcast: bool = False) -> str | None:
        """A best-effort thread note: a Slack failure is logged, never fatal to the flow."""
        try:
            return self._post_thread(incident, key, text, blocks, broadcast).ts
        except DeliveryFailed as error:
            log.warning("thread message %s not delivered: %s", key, error, extra={"incident": incident.id})
            return None

    def _pace(self, channel: str) -> None:
        """Slack allows about one message per second per channel (short bursts are fine): all
        processes share one budget in Redis, so a busy incident never draws 429s."""
        for _ in range(20):
            wait = self._live.throttle(f"chat.postMessage:{channel}", POSTS_PER_SECOND, POST_BURST)
            if wait <= 0:
                return
            time.sleep(wait)

    def _update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """Redraw a message. An update is idempotent (it sets the whole message), so an unknown
        outcome (5xx, dropped connection) or a 429 that outlasted the client's own waits is sent
        again, a few times. Best effort after that: logged, never fatal to the flow."""
        for attempt in range(UPDATE_ATTEMPTS):
            try:
                self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
                return
            except Exception as error:
                if not retryable(error) or attempt == UPDATE_ATTEMPTS - 1:
                    log.warning("slack chat_update of %s failed: %s", ts, delivery_failed(error))
                    return
                time.sleep(0.5 * (attempt + 1))

    def _safe(self, method: Any, **kwargs: Any) -> None:
        """Updates and ephemerals are best effort: a failure is logged, never fatal to the flow."""
        try:
            method(**kwargs)
        except Exception as error:
            log.warning("slack %s failed: %s", getattr(method, "__name__", "call"), delivery_failed(error))

    def _summary_link(self, incident: Incident) -> str | None:
        channel = incident.channel or self._policy.environments[incident.env].channel
        return self._permalink(channel, incident.summary_ts) if incident.summary_ts else None

    def _permalink(self, channel: str, ts: str) -> str:
        if self._workspace_url is None:
            try:
                self._workspace_url = str(self._client.auth_test().get("url") or "https://slack.com/")
            except Exception:
                self._workspace_url = "https://slack.com/"
        return f"{self._workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"

