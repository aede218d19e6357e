"""The benchmark still runs: `python -m bench --smoke` starts both apps, fires every request and
prints every table. It asserts what the run did, never how fast (bench/RESULTS.md has timings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("isolate", [False, True], ids=["shared", "isolated"])
def test_the_benchmark_smoke_run_prints_every_table_with_no_failed_request(database_url: str, redis_url: str,
                                                                           isolate: bool) -> None:
    if isolate and len(getattr(os, "sched_getaffinity", lambda _: ())(0)) < 2:
        pytest.skip("--isolate needs two cores (and Linux)")
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", *(["--isolate"] if isolate else [])], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # The smoke run's servers run on this interpreter, and the line says where they ran, as read
    # from /proc at the end: with --isolate both webs on one core and nothing else on it.
    line = re.search(r"^servers on (\S+); (.*)$", out, re.MULTILINE)
    assert line is not None, out[:600]
    assert Path(ROOT / line[1]).resolve() == Path(sys.executable).resolve(), line[0]
    placed = dict(re.findall(r"(rollbot-web|rollbot-worker|bare-bolt|the emulators and the load generator) on "
                             r"(?:cores )?([\d,]+)", line[2]))
    assert len(placed) == 4, line[0]
    cores = {name: set(where.split(",")) for name, where in placed.items()}
    if isolate:
        assert cores["rollbot-web"] == cores["bare-bolt"] and len(cores["rollbot-web"]) == 1, line[0]
        assert not cores["rollbot-web"] & (cores["rollbot-worker"] | cores["the emulators and the load generator"])
    else:
        # everything where this test runs; the worker keeps to one of those cores (ROLLBOT_WORKER_ONE_CORE)
        assert len({frozenset(cores[name]) for name in cores if name != "rollbot-worker"}) == 1, line[0]
        assert cores["rollbot-worker"] <= cores["rollbot-web"], line[0]
    rows = re.findall(r"^\| (help|code|approve) \| (\d+) \| .* \| (\d+) \| (\d+) \|$", out, re.MULTILINE)
    assert sorted((request, int(c)) for request, c, _, _ in rows) == sorted(
        (request, c) for request in ("help", "code", "approve") for c in (1, 4))
    assert all(failed == "0" for _, _, _, failed in rows), out  # how long each took is not asserted
    for c in (1, 4):  # every request was planned, and every deciding click reached Vercel and was verified
        for name in ("request -> root message", "approve -> Vercel rollback call", 'approve -> "Verified" message'):
            assert re.search(rf"^\| {re.escape(name)} \| {c} \| \d+ \| \d+ \| \d+ \|$", out, re.MULTILINE), out
    # One rollback alone (one round in the smoke run) reached Vercel and was verified.
    assert re.search(r"^One rollback at a time \(1\), the machine otherwise idle: request -> root message \d+ ms "
                     r"\(max \d+\), approve -> Vercel rollback call "
                     r"\d+ ms \(max \d+\), approve -> \"Verified\" message \d+ ms \(max \d+\)$", out, re.MULTILINE), out
    assert re.search(r"^Reminders due at once, each in its own channel: all sent in [\d.]+ s", out, re.MULTILINE), out
    cpu = re.findall(r"^\| (help|code|approve) \| ([\d.]+) / ([\d.]+) \| ([\d.]+) / ([\d.]+) \|$", out, re.MULTILINE)
    # The web's CPU per request, both apps, c=1 and 4 (read in clock ticks: a short batch may read 0).
    assert sorted(request for request, *_ in cpu) == ["approve", "code", "help"], out
    # The work per rollback: every rollback made its Vercel rollback call and read it back, and
    # told Slack (lower bounds: how often a redraw is drawn again depends on timing; the
    # worker's CPU is in clock ticks).
    found = re.findall(r"^\| (worker CPU \(ms\)|Slack calls|Vercel calls) \| ([\d.]+) \| ([\d.]+) \|$", out,
                       re.MULTILINE)
    work = {name: (float(c1), float(c4)) for name, c1, c4 in found}
    assert set(work) == {"worker CPU (ms)", "Slack calls", "Vercel calls"}, out
    assert all(calls >= 2 for calls in work["Vercel calls"]) and all(calls >= 1 for calls in work["Slack calls"]), out
    for process in ("rollbot-web", "rollbot-worker", "bare-bolt"):
        assert re.search(rf"^- {process}: \d+ \(", out, re.MULTILINE), out
