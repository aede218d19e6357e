"""Prometheus text for `GET /metrics`. Counters live in Redis, so every web process and replica
adds to the same numbers (a process-local counter would depend on which worker was scraped);
gauges are read from Postgres at each scrape."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from handlers import drills
from handlers.config import Drills
from handlers.model import Incident, Status
from integrations.redis_state import RedisState

log = logging.getLogger("rollbot.metrics")
_KEY = "metrics:counters"


class Counters:
    def __init__(self, redis: RedisState) -> None:
        self._redis = redis

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        field = json.dumps([name, sorted(labels.items())])
        self._redis.hincr(_KEY, field, amount)

    def snapshot(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        out = {}
        for field, value in self._redis.hgetall_floats(_KEY).items():
            name, labels = json.loads(field)
            out[(name, tuple(tuple(pair) for pair in labels))] = value
        return out


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


def render(counters: dict[tuple[str, tuple[tuple[str, str], ...]], float], gauges: dict[str, float]) -> str:
    lines: list[str] = []
    typed: set[str] = set()
    for (name, labels), value in sorted(counters.items()):
        if name not in typed:
            lines.append(f"# TYPE {name} counter")
            typed.add(name)
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}")
    for name, value in sorted(gauges.items()):
        family = name.split("{", 1)[0]
        if family not in typed:
            lines.append(f"# TYPE {family} gauge")
            typed.add(family)
        lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Whole numbers as integers, others in full (a timestamp keeps its precision)."""
    return str(int(value)) if value.is_integer() else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
