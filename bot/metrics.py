"""`GET /metrics` with prometheus_client. Counters are per process: under gunicorn, in its
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by `rollbot web`), so a scrape of any
worker of a replica reports that replica's total and Prometheus sums the replicas. The gauges are
read from Postgres at each scrape, by a custom collector."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from handlers import drills
from handlers.config import Drills
from handlers.model import Incident, Status

log = logging.getLogger("rollbot.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes; every Prometheus reads it

SLACK_REQUESTS = Counter("rollbot_slack_requests", "Signed Slack requests that reached Bolt, by kind", ["kind"])
LISTENER_ERRORS = Counter("rollbot_listener_errors", "Listener failures, by exception type", ["error"])
_HELP = {
    "rollbot_incidents": "Incidents by status; real rollbacks and drills apart",
    "rollbot_open_incidents": "Incidents pending or executing or monitoring",
    "rollbot_dead_jobs": "Due jobs given up on after too many attempts (alert on > 0)",
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


def scrape(read_gauges: Callable[[], dict[str, float]]) -> tuple[bytes, str]:
    """The exposition body and its content type: this process's counters (every worker's, in
    multiprocess mode) and the gauges."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (SLACK_REQUESTS, LISTENER_ERRORS):
            registry.register(collector)
    registry.register(PostgresGauges(read_gauges))
    return generate_latest(registry), CONTENT_TYPE


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
    for drill, last in (("false", last_rollback), ("true", last_drill)):
        at = last.rolled_back_at if last else None
        out[f'rollbot_last_rollback_timestamp_seconds{{drill="{drill}"}}'] = at.timestamp() if at else 0.0
    schedule = drills.schedule(policy, last_drill)
    out["rollbot_drill_overdue"] = float(schedule.drill_overdue(now))
    out["rollbot_procedure_review_overdue"] = float(schedule.review_overdue(now.date()))
    return out
