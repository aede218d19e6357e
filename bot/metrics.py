"""Process-local Prometheus counters rendered as text for `GET /metrics`."""

from __future__ import annotations

import threading
from collections import defaultdict

_lock = threading.Lock()
_counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)


def inc(name: str, amount: float = 1.0, **labels: str) -> None:
    with _lock:
        _counters[(name, tuple(sorted(labels.items())))] += amount


def render(gauges: dict[str, float] | None = None) -> str:
    lines = []
    with _lock:
        items = sorted(_counters.items())
    seen: set[str] = set()
    for (name, labels), value in items:
        if name not in seen:
            lines.append(f"# TYPE {name} counter")
            seen.add(name)
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
    for name, value in sorted((gauges or {}).items()):
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name} {value:g}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
