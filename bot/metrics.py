"""Prometheus text for `GET /metrics`. Counters live in Redis, so every web process and replica
adds to the same numbers (a process-local counter would depend on which worker was scraped)."""

from __future__ import annotations

import json
import logging

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


def render(counters: dict[tuple[str, tuple[tuple[str, str], ...]], float], gauges: dict[str, float]) -> str:
    lines: list[str] = []
    typed: set[str] = set()
    for (name, labels), value in sorted(counters.items()):
        if name not in typed:
            lines.append(f"# TYPE {name} counter")
            typed.add(name)
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
    for name, value in sorted(gauges.items()):
        family = name.split("{", 1)[0]
        if family not in typed:
            lines.append(f"# TYPE {family} gauge")
            typed.add(family)
        lines.append(f"{name} {value:g}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
