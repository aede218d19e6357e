"""`GET /metrics` with prometheus_client: what each process did, and the state in Postgres.

* Counters and histograms are per process. Under gunicorn they use prometheus_client's
  multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by `rollbot web`), so a scrape of any
  worker of a replica reports that replica's total and Prometheus sums the replicas.
  `rollbot worker` serves its own on ``ROLLBOT_WORKER_METRICS_PORT``; `rollbot dev` runs both in
  one process, so its one `/metrics` has all of them.
* The gauges (incidents by status, jobs due, running and dead, the last rollback, drills) are
  read from Postgres at each scrape, by a custom collector: the same on every replica.

Labels are codes and names from the policy (kinds, environments, Slack methods, the request's
kind), never user text, so a label's values stay few. ``docs/operations.md`` lists every series.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Callable, Collection, Iterator
from contextvars import ContextVar
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from handlers import drills
from handlers.config import Drills
from handlers.model import Incident, Status
from handlers.services import Services

log = logging.getLogger("rollbot.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes; every Prometheus reads it

SLACK_REQUESTS = Counter("rollbot_slack_requests", "Slack requests handed to Bolt (signed, well-formed, first deliveries), by kind", ["kind"])
LISTENER_ERRORS = Counter("rollbot_listener_errors", "Listener failures, by exception type", ["error"])
ACK_SECONDS = Histogram("rollbot_slack_ack_seconds", "From a Slack request's arrival to its ack leaving, by kind "
                        "(Slack shows an error at 3 s)", ["kind"],
                        buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 5))
REQUEST_SECONDS = Histogram("rollbot_slack_request_seconds", "From a Slack request's arrival to the end of the "
                            "web's work for it (the ack and what runs after it), by kind", ["kind"],
                            buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
REFUSALS = Counter("rollbot_refusals", "Refused attempts, by what was attempted and why (a short code)",
                   ["action", "code"])
APPROVALS = Counter("rollbot_approvals", "Approvals recorded, and whether each decided its incident",
                    ["kind", "env", "decided"])
ROLLBACKS = Counter("rollbot_rollbacks", "Executions ended, by outcome (verified, unhealthy, failed)",
                    ["kind", "env", "outcome"])
TIME_TO_ROLLBACK = Histogram("rollbot_time_to_rollback_seconds", "From the request to the provider's change",
                             ["kind", "env"], buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200))
AGAINST_TARGET = Histogram("rollbot_time_to_rollback_target_ratio", "Time to rollback over the decision matrix's "
                           "target for the incident (le=1: within target)", ["kind", "env"],
                           buckets=(.25, .5, .75, 1, 1.5, 2, 4))
JOBS_CLAIMED = Counter("rollbot_jobs_claimed", "Due jobs a worker claimed, by kind", ["kind"])
JOBS = Counter("rollbot_jobs", "Due jobs run, by kind and how they ended (done; retry: failed, due again later)",
               ["kind", "outcome"])
PROVIDER_SECONDS = Histogram("rollbot_provider_call_seconds", "Calls to Slack's Web API and Vercel's REST API, by "
                             "method and status (Slack: ok or its error; Vercel: the HTTP status)",
                             ["provider", "method", "status"],
                             buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
PROVIDER_ERRORS = Counter("rollbot_provider_call_errors", "Failed calls to Slack and Vercel, by method and status",
                          ["provider", "method", "status"])
RECEIVED: ContextVar[float | None] = ContextVar("rollbot_received", default=None)
"""When the Slack request being handled arrived (``time.perf_counter()``), set by the edge."""


def request_done(body: object, received: float | None) -> None:
    """The web's work for a request ended (its ack, and what ran after it)."""
    if received is not None:
        REQUEST_SECONDS.labels(kind=request_kind(body if isinstance(body, dict) else {})).observe(
            time.perf_counter() - received)


OURS = (SLACK_REQUESTS, LISTENER_ERRORS, ACK_SECONDS, REQUEST_SECONDS, REFUSALS, APPROVALS, ROLLBACKS,
        TIME_TO_ROLLBACK, AGAINST_TARGET, JOBS_CLAIMED, JOBS, PROVIDER_SECONDS, PROVIDER_ERRORS)
_HELP = {
    "rollbot_incidents": "Incidents by status; real rollbacks and drills apart",
    "rollbot_open_incidents": "Incidents pending or executing or monitoring",
    "rollbot_dead_jobs": "Due jobs given up on after too many attempts (alert on > 0)",
    "rollbot_jobs_waiting": "Due jobs by state: due (their time has come, not yet claimed), running, dead",
    "rollbot_last_rollback_timestamp_seconds": "When the last rollback (or drill) rolled back; 0 for never",
    "rollbot_drill_overdue": "1 when the next drill is overdue",
    "rollbot_procedure_review_overdue": "1 when the procedure's review is overdue",
}
_SERIES = re.compile(r'^(\w+)(?:\{(.*)\})?$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class PostgresGauges(Collector):
    """The gauges, read when scraped (``read`` returns what :func:`gauges` builds; {} when
    Postgres cannot be read: the scrape still succeeds)."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for series, value in sorted(self._read().items()):
            match = _SERIES.match(series)
            if match is None:
                continue
            name, labels = match.group(1), dict(_LABEL.findall(match.group(2) or ""))
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, _HELP.get(name, name), labels=sorted(labels))
            family.add_metric([labels[k] for k in sorted(labels)], value)
        yield from families.values()


def _process_registry() -> CollectorRegistry:
    """This process's series: every gunicorn worker's in multiprocess mode, else our own."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in OURS:
            registry.register(collector)
    return registry


def scrape(read_gauges: Callable[[], dict[str, float]]) -> tuple[bytes, str]:
    """The exposition body and its content type: this process's series and the gauges."""
    registry = _process_registry()
    registry.register(PostgresGauges(read_gauges))
    return generate_latest(registry), CONTENT_TYPE


def serve_metrics(host: str, port: int, read_gauges: Callable[[], dict[str, float]] | None = None) -> None:
    """A process's own `/metrics` on a daemon thread (prometheus_client's server): `rollbot
    worker`'s (its series; the gauges are the web's), `rollbot socket`'s (with the gauges)."""
    registry = _process_registry()
    if read_gauges is not None:
        registry.register(PostgresGauges(read_gauges))
    start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)


def state_gauges(services: Services) -> dict[str, float]:
    """The gauges, read from Postgres now ({} when it cannot be read: a scrape never fails)."""
    store = services.store
    try:
        counts, last, drill = store.status_counts(), store.last_rolled_back(), store.last_rolled_back(drill=True)
    except Exception:
        return {}
    return gauges(counts, last, drill, services.policy.drills, services.clock.now())


def request_kind(body: dict[str, object], words: Collection[str] = ()) -> str:
    """A Slack request's kind as a label: ``/rollback``'s first word when it is one of ``words``
    (the kinds' words) or a command of ours (``command:code``), an action's id
    (``action:approve``), a view's callback id, an event's type; anything else ``other``. No
    other word ever becomes a label."""
    kind = body.get("type")
    if isinstance(body.get("command"), str):
        text = body.get("text")
        word = text.split(maxsplit=1)[0].lower() if isinstance(text, str) and text.strip() else "help"
        return f"command:{word if word in _COMMANDS or word in words else 'other'}"
    if kind == "block_actions":
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
        return f"action:{_label(action.get('action_id'))}"
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        return f"view:{_label(view.get('callback_id') if isinstance(view, dict) else None)}"
    if kind == "event_callback":
        event = body.get("event")
        return f"event:{_label(event.get('type') if isinstance(event, dict) else None)}"
    return "other"


_COMMANDS = frozenset({"help", "decide", "status", "history", "resolve", "cancel", "drill"})  # the kinds' words are given
_LABEL_TEXT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _label(value: object) -> str:
    """Our own ids (``approve``, ``deny_modal``, ``app_home_opened``) pass; anything else is ``other``."""
    return value if isinstance(value, str) and _LABEL_TEXT.match(value) else "other"


def _never_raises(report: Callable[..., None]) -> Callable[..., None]:
    """A metric that cannot be written (a full disk under multiprocess mode) is logged, never
    raised into the rollback that reported it."""
    @functools.wraps(report)
    def guarded(*args: object, **kwargs: object) -> None:
        try:
            report(*args, **kwargs)
        except Exception as error:
            log.warning("could not record a metric (%s: %s)", report.__name__, type(error).__name__)
    return guarded


class PrometheusTelemetry:
    """``handlers.ports.Telemetry`` on the series above."""

    @_never_raises
    def refused(self, action: str, code: str) -> None:
        REFUSALS.labels(action=action[:40], code=code[:40]).inc()

    @_never_raises
    def approved(self, kind: str, env: str, decided: bool) -> None:
        APPROVALS.labels(kind=kind, env=env, decided="true" if decided else "false").inc()

    @_never_raises
    def rolled_back(self, kind: str, env: str, outcome: str, seconds: float | None, target_seconds: float) -> None:
        ROLLBACKS.labels(kind=kind, env=env, outcome=outcome).inc()
        if seconds is not None:
            TIME_TO_ROLLBACK.labels(kind=kind, env=env).observe(seconds)
            if target_seconds > 0:
                AGAINST_TARGET.labels(kind=kind, env=env).observe(seconds / target_seconds)

    @_never_raises
    def job_finished(self, kind: str, outcome: str) -> None:
        JOBS.labels(kind=kind, outcome=outcome).inc()


def provider_call(provider: str, method: str, status: str, seconds: float, ok: bool) -> None:
    """One call to Slack or Vercel: its latency, and an error when it failed."""
    PROVIDER_SECONDS.labels(provider=provider, method=method, status=status).observe(seconds)
    if not ok:
        PROVIDER_ERRORS.labels(provider=provider, method=method, status=status).inc()


def gauges(counts: dict[str, int], last_rollback: Incident | None, last_drill: Incident | None,
           policy: Drills, now: datetime) -> dict[str, float]:
    """The gauges: incidents per status, real rollbacks and drills apart (``drill="false|true"``),
    the open ones (both), dead jobs, when the last rollback and the last drill rolled back (0 for
    never), and whether a drill or the procedure's review is overdue (1) or not (0)."""
    out: dict[str, float] = {}
    for status in Status:
        drill_count = counts.get(f"drill.{status.value}", 0)
        for drill, value in (("false", counts.get(status.value, 0) - drill_count), ("true", drill_count)):
            out[f'rollbot_incidents{{status="{status.value}",drill="{drill}"}}'] = float(value)
    out["rollbot_open_incidents"] = float(sum(counts.get(s.value, 0) for s in Status if s.is_open))
    out["rollbot_dead_jobs"] = float(counts.get("dead_jobs", 0))  # alert on > 0
    for state in ("due", "running", "dead"):
        out[f'rollbot_jobs_waiting{{state="{state}"}}'] = float(counts.get(f"{state}_jobs", 0))
    for drill, last in (("false", last_rollback), ("true", last_drill)):
        at = last.rolled_back_at if last else None
        out[f'rollbot_last_rollback_timestamp_seconds{{drill="{drill}"}}'] = at.timestamp() if at else 0.0
    schedule = drills.schedule(policy, last_drill)
    out["rollbot_drill_overdue"] = float(schedule.drill_overdue(now))
    out["rollbot_procedure_review_overdue"] = float(schedule.review_overdue(now.date()))
    return out
